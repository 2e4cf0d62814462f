import subprocess
import sys


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_import_is_light():
    code = ("import sys, trimnet; trimnet.load_dataset; trimnet.create_model; trimnet.train; trimnet.load_artifact; "
            "heavy = [m for m in ('onnx', 'onnxruntime', 'openvino', 'fastapi', 'matplotlib', 'torch_pruning') "
            "if m in sys.modules]; print(heavy)")
    assert _run(code) == "[]"


def test_bare_import_loads_neither_torch_nor_submodules():
    code = ("import sys, time; t = time.perf_counter(); import trimnet; dt = time.perf_counter() - t; "
            "mods = sorted(m for m in sys.modules if m.startswith('trimnet')); "
            "print('torch' in sys.modules, 'numpy' in sys.modules, mods, dt < 0.5)")
    assert _run(code) == "False False ['trimnet'] True"


def test_functions_win_over_subpackages_of_the_same_name():
    code = ("import trimnet, trimnet.train.loop, trimnet.profile.api, trimnet.optimize.search; "
            "from trimnet.train.loop import train; from trimnet.profile.api import profile; "
            "from trimnet.optimize.search import optimize; "
            "print(trimnet.train is train, trimnet.profile is profile, trimnet.optimize is optimize)")
    assert _run(code) == "True True True"


def test_public_api_resolves():
    import trimnet as tn

    for name in ("load_dataset", "create_model", "train", "evaluate", "predict", "load_artifact",
                 "save_artifact", "TrainConfig", "DataError", "optimize", "profile"):
        assert getattr(tn, name) is not None
    assert callable(tn.train) and callable(tn.profile) and callable(tn.optimize)
