"""Export to ONNX and OpenVINO: the files, their metadata, and a parity check that catches wrong graphs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.runtime import ExportError, ParityError, check_file, export
from trimnet.runtime.parity import random_inputs

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


class ExportsDifferently(nn.Module):
    """Computes x * 2 in eager mode and x * 3 when traced for export: an export that lies."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) * (3.0 if torch.compiler.is_exporting() else 2.0)


class NoOnnxOperator(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.bessel_j0(x.flatten(1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_digits, make_tiny_cnn):
    """One ONNX export shared by the tests that read it (exports take seconds)."""
    model = make_tiny_cnn(num_classes=10).train()
    result = export(model, tmp_path_factory.mktemp("onnx"), small_digits.x_test[:2], dataset=small_digits,
                    metadata={"source": "test"})
    return model, result


def test_onnx_export_has_dynamic_batch_opset_and_metadata(exported, small_digits):
    model, result = exported
    assert result.path.name == "model.onnx"  # a directory gets model.onnx
    proto = onnx.load(str(result.path))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [1, 8, 8]
    assert {o.domain: o.version for o in proto.opset_import}[""] == 18
    props = {p.key: p.value for p in proto.metadata_props}
    assert props["trimnet.version"] == tn_version()
    assert json.loads(props["trimnet.input_shape"]) == [1, 8, 8]
    assert json.loads(props["trimnet.class_names"]) == small_digits.class_names
    assert json.loads(props["trimnet.normalization"])["mean"] == small_digits.normalization.mean
    assert props["trimnet.source"] == "test"


def test_parity_ran_on_random_and_real_inputs(exported):
    model, result = exported
    labels = [c.label for c in result.parity.cases]
    assert labels[:2] == ["random batch 1", "random batch 3"]  # batch sizes other than the traced one
    assert labels[2].startswith("digits test batch")
    assert result.parity.passed and result.parity.max_rel < 1e-4
    assert model.training  # export put it in eval mode only while it worked


def test_an_edited_onnx_file_fails_the_check(exported, tmp_path):
    model, result = exported
    proto = onnx.load(str(result.path))
    # scale the largest weight tensor by 1 %: small, but far outside the f32 tolerance
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    w = onnx.numpy_helper.to_array(init) * 1.01
    init.CopyFrom(onnx.numpy_helper.from_array(w.astype(np.float32), init.name))
    onnx.save(proto, str(tmp_path / "edited.onnx"))
    with pytest.raises(ParityError, match="parity check failed") as info:
        check_file(model, tmp_path / "edited.onnx", random_inputs((1, 8, 8)))
    assert not info.value.report.passed
    check_file(model, result.path, random_inputs((1, 8, 8)))  # the untouched file still passes


def test_an_export_that_differs_from_eager_is_an_error(tmp_path):
    x = torch.randn(2, 1, 4, 4)
    with pytest.raises(ParityError, match="max abs error"):
        export(ExportsDifferently(), tmp_path / "m.onnx", x)


def test_a_failed_export_names_the_operator(tmp_path):
    with pytest.raises(ExportError, match="bessel_j0"):
        export(NoOnnxOperator(), tmp_path / "m.onnx", torch.randn(2, 4))


def test_bad_format_and_precision_are_user_errors(tiny_cnn, example, tmp_path):
    with pytest.raises(ConfigError, match="suffix"):
        export(tiny_cnn, tmp_path / "m.onnx", example, format="openvino")
    with pytest.raises(ConfigError, match="precision"):
        export(tiny_cnn, tmp_path / "m.onnx", example, precision="f16")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        export(tiny_cnn, tmp_path / "m.pt", example)


def test_openvino_ir_with_metadata_and_f16_weights(tiny_cnn, example, tmp_path):
    ov = pytest.importorskip("openvino")
    result = export(tiny_cnn, tmp_path, example, format="openvino", precision="f16", class_names=["a", "b", "c"])
    assert result.path == tmp_path / "model.xml" and result.path.with_suffix(".bin").exists()
    assert result.parity.precision == "f16" and result.parity.passed
    assert 'element_type="f16"' in result.path.read_text()  # weights stored in half precision
    model = ov.Core().read_model(str(result.path))
    assert json.loads(model.get_rt_info(["trimnet", "class_names"]).astype(str)) == ["a", "b", "c"]


def test_openvino_ir_is_written_whole_or_not_at_all(tiny_cnn, example, tmp_path):
    pytest.importorskip("openvino")
    export(tiny_cnn, tmp_path, example, format="openvino")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.bin", "model.xml"]  # no staging left behind
    assert oct((tmp_path / "model.xml").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def tn_version() -> str:
    import trimnet

    return trimnet.__version__
