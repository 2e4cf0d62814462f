import subprocess
import sys


def test_import_is_light():
    code = ("import sys, trimnet; trimnet.load_dataset; trimnet.create_model; trimnet.train; trimnet.load_artifact; "
            "heavy = [m for m in ('onnx', 'onnxruntime', 'openvino', 'fastapi', 'matplotlib', 'torch_pruning') "
            "if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_resolves():
    import trimnet as tn

    for name in ("load_dataset", "create_model", "train", "evaluate", "predict", "load_artifact",
                 "save_artifact", "TrainConfig", "DataError"):
        assert getattr(tn, name) is not None
