"""Every registered model exports to ONNX and runs on onnxruntime and openvino with parity to PyTorch."""

from __future__ import annotations

import pytest
import torch

from trimnet.models import create_model, list_models
from trimnet.runtime import backend_status, export, load_runner

pytest.importorskip("onnx")

# Small inputs and widths keep each export to a second or two; a model not listed is tried
# on 8x8 single-channel images with its defaults.
SMALL = {
    "mlp": ((30,), {}),
    "transformer": ((30,), {}),
    "text_transformer": ((16,), {"vocab_size": 50, "dim": 32, "heads": 4}),
    "bert_base_encoder": ((16, 48), {"depth": 2, "heads": 4}),
    "resnet18": ((3, 8, 8), {"width": 0.25}),
    "resnet34": ((1, 8, 8), {"width": 0.125}),
    "resnet50": ((3, 8, 8), {"width": 0.125}),
    "resnet20": ((3, 8, 8), {"width": 0.25}),
    "resnet56": ((3, 8, 8), {"width": 0.25}),
    "vgg16": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 2}),
    "vgg16_bn": ((1, 8, 8), {"width": 0.125, "hidden": 32, "pool_size": 1}),
    "mobilenetv2": ((3, 8, 8), {"width": 0.25}),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_models())
def test_zoo_model_exports_with_parity(name, tmp_path):
    status = backend_status()
    if status["onnxruntime"] is not None:
        pytest.skip(status["onnxruntime"])
    in_shape, options = SMALL.get(name, ((1, 8, 8), {}))
    torch.manual_seed(0)
    model = create_model(name, in_shape, 5, **options).eval()
    x = torch.randn(2, *in_shape)
    result = export(model, tmp_path / "model.onnx", x)  # checked on onnxruntime
    assert result.parity.passed, result.parity.summary()
    if status["openvino"] is None:  # the same file through openvino's ONNX reader
        with load_runner("openvino", model, x, exported=result.path) as runner:
            assert runner.parity["passed"]
            assert runner.run(x.numpy()).shape == (2, 5)
