"""A new backend is one ``register_backend`` call: everything that asks about backends picks it up.

``toy`` is a clone of PyTorch eager registered here and nowhere else; the tests show that
loading and benchmarking, the export path, ``trimnet bench --list-backends``, hardware
calibration (plan, measurement, the machine record, local estimates and their fusions) and
the optimize search all see it without a change to any other file.
"""

from __future__ import annotations

import json

import pytest
import torch

import trimnet as tn
from trimnet.errors import ConfigError
from trimnet.precision import Precision
from trimnet.runtime.backend import BACKENDS, Backend, CalibrationPlan, register_backend
from trimnet.runtime.torch_eager import TorchRunner

TOY_FUSES = frozenset({"norm", "free"})


def _load_toy(model, exported, example_inputs, *, threads: int | None = None) -> TorchRunner:
    return TorchRunner(model, backend="toy", threads=threads, details={"mode": "toy: eager, inference_mode"})


@pytest.fixture
def toy():
    """The one place the toy backend is described; removed again so other tests see the usual registry."""
    from trimnet.runtime.backend import all_backends

    all_backends()  # the built-in backends first, as in any process
    backend = register_backend(Backend(
        "toy", "a clone of PyTorch eager, for the tests", _load_toy,
        fuses=TOY_FUSES,  # folds batch norm into the convolution before it, like an export would
        calibration=CalibrationPlan("kernels", ((Precision.FP32, {}),), by_default=False),
        versions=("safetensors",),  # the package whose version its calibrations depend on
        precisions=(Precision.FP32,)))
    try:
        yield backend
    finally:
        BACKENDS.unregister("toy")


def test_runtime_loads_and_lists_it(toy, tiny_cnn, example):
    assert "toy" in tn.runtime.list_backends() and tn.runtime.get_backend("toy") is toy
    with tn.runtime.load_runner("toy", tiny_cnn, example, threads=1) as runner:
        assert runner.parity["passed"] and runner.precision == "f32"
        assert runner.describe()["backend"] == "toy"
        assert runner.run(example.numpy()).shape == (2, 3)


def test_benchmark_measures_it(toy, tiny_cnn, example):
    from trimnet.bench import BenchConfig

    quick = BenchConfig(threads=1, warmup_window=3, warmup_max_s=0.1, min_iters=5, min_time_s=0.02, max_time_s=0.3)
    result = tn.benchmark(tiny_cnn, example, backends=["toy"], batch_sizes=[1], config=quick)
    (m,) = result.results
    assert m.name == "toy" and m.status == "ok" and m.p50 > 0 and m.runner["mode"].startswith("toy")


def test_bench_list_backends_shows_it(toy, capsys):
    from trimnet.cli.main import main

    assert main(["bench", "--list-backends", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)["toy"]
    assert listed == {"usable": True, "reason": None, "summary": toy.summary, "options": ["threads"],
                      "precisions": ["fp32"], "export": None}


def test_export_says_there_is_nothing_to_export_for_it(toy, tiny_cnn, example, tmp_path):
    with pytest.raises(ConfigError, match="'toy' runs the PyTorch module itself: there is no file to export"):
        tn.runtime.export(tiny_cnn, tmp_path, example, format="toy")
    # a backend that does run a file names its format: --format onnxruntime writes model.onnx
    from trimnet.runtime.backend import get_format

    assert get_format("onnxruntime").name == "onnx" and get_format("openvino").suffix == ".xml"


def test_hardware_calibrates_estimates_and_records_it(toy, tiny_cnn, example, tmp_path):
    from trimnet.hardware import calibrate, estimate
    from trimnet.hardware.calibrate import calibration_plan
    from trimnet.hardware.calibration import machine_keys
    from trimnet.hardware.roofline import fused_roles

    assert "toy" not in {b for b, *_ in calibration_plan("cpu")}  # by_default=False: only when named
    assert [(b, d, o) for b, d, o, _ in calibration_plan("cpu", ["toy"])] == [("toy", "fp32", {})]
    assert "safetensors" in machine_keys() and fused_roles("toy") == TOY_FUSES
    cal = calibrate(quick=True, backends=["toy"], point_seconds=0.002, path=tmp_path / "local.json")
    assert set(cal.series) == {"toy/fp32"} and cal.machine["safetensors"]
    est = estimate(tn.profile(tiny_cnn, example), "local", backend="toy", calibration=cal)
    assert est.backend == "toy" and est.latency_s > 0
    assert est.assumptions["fused_roles"] == sorted(TOY_FUSES)
    fused = {layer.name for layer in est.layers if layer.fused}
    assert fused and fused == {layer.name for layer in est.layers if layer.role in TOY_FUSES}


def test_optimize_search_measures_on_it(toy, tmp_path):
    from trimnet.optimize.search import OptimizeConfig, optimize

    data = tn.load_dataset("breast_cancer")
    torch.manual_seed(0)
    model = tn.create_model("mlp", data.in_shape, data.num_classes, hidden=[16])
    said: list[str] = []
    cfg = OptimizeConfig(target_backend="toy", criteria=["l1"], ratios=[0.5], finetune_epochs=0,
                         finetune_retry_epochs=0, precisions=["fp32", "bf16"], bench_time_s=0.02, threads=1,
                         max_accuracy_drop=1.0 - 1e-9)
    result = optimize(model, data, cfg, progress=said.append)
    assert result.original.backend == "toy" and all(c.backend == "toy" for c in result.candidates)
    assert any("bf16: no method for toy" in m for m in said)  # it runs fp32 only: no bf16 to try
