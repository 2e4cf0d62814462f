"""INT8 dynamic quantization on onnxruntime: ``quantize_dynamic`` of the linear layers.

Weights are stored in int8; each batch's inputs to a quantized MatMul/Gemm are quantized
on the fly (``DynamicQuantizeLinear``), so nothing is calibrated. It pays off where
matrix products with large weights dominate (MLPs, transformers, classifier heads);
convolutions are left in fp32, since onnxruntime's ``ConvInteger`` is slower than its
fp32 convolution on CPUs. Saved as ``model_int8_dynamic.onnx``.
"""

from __future__ import annotations

from trimnet.errors import require
from trimnet.optimize.quantize.method import BuildContext, Candidate, register_method
from trimnet.optimize.quantize.onnx_common import integer_layers, ort_runtime_ops, preprocessed, set_metadata

FILE = "model_int8_dynamic.onnx"
OP_TYPES = ["MatMul", "Gemm", "Attention"]


@register_method("int8-dynamic", "onnxruntime", "dynamic INT8 (weights int8, inputs quantized per batch) "
                 "of MatMul/Gemm with onnxruntime quantize_dynamic", requires=(("onnxruntime", "onnx"), ("onnx", "onnx")))
def build(ctx: BuildContext) -> Candidate:
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    cfg = ctx.config
    fp32 = ctx.onnx()
    path = ctx.workdir / FILE
    quantize_dynamic(str(preprocessed(fp32)), str(path), weight_type=QuantType.QInt8, per_channel=cfg.per_channel,
                     op_types_to_quantize=OP_TYPES)
    set_metadata(path, {**ctx.metadata, "trimnet.precision": "int8-dynamic"})
    layers = integer_layers(path)
    int8 = sum(1 for layer in layers if layer["precision"] == "int8")
    return Candidate(
        backend="onnxruntime", precision="int8-dynamic", options={}, file=path, baseline_file=fp32, layers=layers,
        details={"tool": "onnxruntime.quantization.quantize_dynamic", "op_types": OP_TYPES,
                 "weights": "int8 " + ("per-channel" if cfg.per_channel else "per-tensor"),
                 "activations": "quantized per batch at run time", "int8_layers": int8, "layers": len(layers),
                 **ort_runtime_ops(path, ctx.workdir, cfg.threads)},
        runs_lower=int8 > 0,
        note=None if int8 else "this model has no MatMul/Gemm layer to quantize dynamically; use --precision int8")
