"""What the OpenVINO methods share: ONNX -> IR with trimnet metadata, and the precision each layer runs in."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from trimnet.errors import require
from trimnet.precision import Precision

# executed nodes that do arithmetic on weights: the layers a per-layer record lists
COMPUTE = {"Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul", "Gemm", "RNNSeq",
           "ScaledDotProductAttention"}


def to_ir(onnx_path: Path, metadata: dict[str, str]):
    """An ``ov.Model`` converted from ``onnx_path``, carrying the metadata under ``trimnet`` in rt_info."""
    ov = require("openvino", "openvino")
    model = ov.convert_model(str(onnx_path))
    for key, value in metadata.items():
        model.set_rt_info(value, key.split("."))
    return model


def save_ir(model, path: Path, compress_to_fp16: bool = False) -> Path:
    ov = require("openvino", "openvino")
    from trimnet.files import save_openvino_ir

    return save_openvino_ir(ov, model, path, compress_to_fp16=compress_to_fp16)


def cpu_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin can run natively here (FP32, BF16, FP16, INT8, ...)."""
    ov = require("openvino", "openvino")
    return [str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def runtime_layers(path: Path, precision_hint: str, threads: int | None = None) -> tuple[list[dict], dict[str, Any]]:
    """Per compute layer, the precision OpenVINO's CPU plugin runs it in; and operator counts by precision."""
    ov = require("openvino", "openvino")
    core = ov.Core()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision_hint}
    if threads:
        config["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    layers, counts = [], Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        precision = _precision_name(info["runtimePrecision"].astype(str))
        if kind in ("Input", "Output", "Const"):
            continue
        counts[f"{kind}:{precision}"] += 1
        if kind in COMPUTE:
            originals = [n for n in info["originalLayersNames"].astype(str).split(",") if n]
            layers.append({"layer": op.get_friendly_name(), "op": kind, "precision": precision, "absorbed": originals})
    return layers, {"runtime_ops": dict(sorted(counts.items())), "openvino": ov.get_version()}


def _precision_name(ov_type: str) -> str:
    """OpenVINO's element type (f32, bf16, f16, i8, u8) in trimnet's spelling; others as OpenVINO names them."""
    if ov_type == "u8":  # an unsigned 8-bit activation of an int8 layer
        return Precision.INT8.value
    try:
        return Precision.parse(ov_type).value
    except ValueError:
        return ov_type
