"""Every backend on a tiny model: any batch size in, logits out, equal to eager PyTorch; skipped with the
reason where a backend cannot run here."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from trimnet.errors import ConfigError, DependencyError
from trimnet.runtime import BACKENDS, BackendUnavailableError, backend_status, list_backends, load_runner
from trimnet.runtime.export import export_onnx_file

STATUS = backend_status()
SLOW = {"torch-compile"}  # compiling C++ kernels takes ten seconds and more on two cores


def backend_params():
    return [pytest.param(name, marks=[pytest.mark.slow] if name in SLOW else []) for name in sorted(STATUS)]


@pytest.fixture(scope="module")
def shared_onnx(tmp_path_factory, make_tiny_cnn):
    """One ONNX export of the tiny model for the ONNX-reading backends (exports take seconds)."""
    if STATUS["onnxruntime"] is not None and STATUS["openvino"] is not None:
        pytest.skip("neither onnxruntime nor openvino is installed")
    return export_onnx_file(make_tiny_cnn(), tmp_path_factory.mktemp("onnx") / "model.onnx",
                            torch.randn(2, 1, 8, 8))


@pytest.mark.parametrize("name", backend_params())
def test_backend_runs_any_batch_like_eager(name, make_tiny_cnn, request):
    if STATUS[name] is not None:
        pytest.skip(f"{name}: {STATUS[name]}")
    model = make_tiny_cnn()
    exported = request.getfixturevalue("shared_onnx") if BACKENDS.get(name).uses_onnx else None
    example = torch.randn(4, 1, 8, 8)
    # a compiled backend compiles once per batch size: test it at the example's size only
    batches = (4,) if name in SLOW else (1, 5)
    with load_runner(name, model, example, exported=exported) as runner:
        assert runner.parity["passed"]
        for batch in batches:
            x = np.random.default_rng(batch).standard_normal((batch, 1, 8, 8), dtype=np.float32)
            out = runner.run(x)
            with torch.inference_mode():
                ref = model(torch.from_numpy(x)).numpy()
            assert out.shape == (batch, 3) and out.dtype == np.float32
            np.testing.assert_allclose(out, ref, rtol=1e-3, atol=1e-4)
            assert runner.call(runner.prepare(x)) is not None  # the form benchmarks time
        info = runner.describe()
        assert info["backend"] == name and info["precision"] == runner.precision == "f32"
        assert "device" in info


def test_onnx_backend_exports_by_itself(make_tiny_cnn):
    if STATUS["onnxruntime"] is not None:
        pytest.skip(STATUS["onnxruntime"])
    with load_runner("onnxruntime", make_tiny_cnn(), torch.randn(2, 1, 8, 8), threads=1) as runner:
        assert runner.describe()["threads"] == 1 and runner.describe()["graph_optimization"] == "all"
        assert runner.run(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 3)


def test_openvino_reports_the_precision_that_ran(make_tiny_cnn, shared_onnx):
    if STATUS["openvino"] is not None:
        pytest.skip(STATUS["openvino"])
    model = make_tiny_cnn()
    x = np.random.default_rng(0).standard_normal((6, 1, 8, 8), dtype=np.float32)
    with load_runner("openvino", model, torch.randn(2, 1, 8, 8), exported=shared_onnx, precision="bf16") as bf16:
        info = bf16.describe()
        assert info["precision_requested"] == "bf16"
        assert bf16.precision in ("bf16", "f32")  # f32 where the CPU has no bf16 instructions
    with load_runner("openvino", model, torch.randn(2, 1, 8, 8), exported=shared_onnx, hint="throughput",
                     threads=2) as tput:
        with torch.inference_mode():
            np.testing.assert_allclose(tput.run(x), model(torch.from_numpy(x)).numpy(), rtol=1e-3, atol=1e-4)
        assert tput.describe()["hint"] == "throughput"


def test_unknown_backend_lists_the_installed_ones():
    with pytest.raises(ConfigError) as info:
        load_runner("tensorrt", torch.nn.Linear(2, 2), torch.randn(1, 2))
    message = str(info.value)
    assert "unknown backend 'tensorrt'" in message
    assert all(name in message for name in list_backends())


def test_unknown_option_lists_the_backend_options(tiny_cnn):
    with pytest.raises(ConfigError, match="threads"):
        load_runner("torch", tiny_cnn, torch.randn(1, 1, 8, 8), precision="bf16")


def test_missing_dependency_names_the_pip_extra(tiny_cnn, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as if not installed
    assert "onnxruntime" not in list_backends()
    with pytest.raises(DependencyError, match=r"pip install 'trimnet\[onnx\]'"):
        load_runner("onnxruntime", tiny_cnn, torch.randn(1, 1, 8, 8))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_gpu_backend_without_a_gpu_says_why(tiny_cnn):
    assert "torch-cuda" not in list_backends()
    with pytest.raises(BackendUnavailableError, match="no CUDA device"):
        load_runner("torch-cuda", tiny_cnn, torch.randn(1, 1, 8, 8))


def test_runner_leaves_the_callers_model_alone(tiny_cnn):
    tiny_cnn.train()
    with load_runner("torch", tiny_cnn, torch.randn(2, 1, 8, 8)) as runner:
        runner.run(np.zeros((2, 1, 8, 8), np.float32))
    assert tiny_cnn.training
