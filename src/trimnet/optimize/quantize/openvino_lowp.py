"""bf16 / fp16 on OpenVINO: the CPU plugin's ``INFERENCE_PRECISION_HINT``.

Nothing is calibrated: the IR keeps fp32 weights (fp16 for ``fp16``, halving the file) and
OpenVINO lowers the arithmetic when it compiles for a CPU that has the instructions
(AVX-512 BF16 / AMX for bf16, AVX-512 FP16 / AMX-FP16 for fp16). On a CPU without them the
plugin runs fp32; the candidate then says so and is not kept.
"""

from __future__ import annotations

from trimnet.optimize.quantize.method import BuildContext, Candidate, register_method
from trimnet.optimize.quantize.openvino_common import cpu_capabilities, runtime_layers, save_ir, to_ir
from trimnet.precision import Precision

HINT = {p.value: p.element for p in (Precision.BF16, Precision.FP16)}  # OpenVINO's spelling: bf16, f16


def _build(ctx: BuildContext, precision: str) -> Candidate:
    fp32 = ctx.onnx()
    model = to_ir(fp32, {**ctx.metadata, "trimnet.precision": precision})
    path = save_ir(model, ctx.workdir / f"model_{precision}.xml", compress_to_fp16=precision == "fp16")
    hint = HINT[precision]
    layers, details = runtime_layers(path, hint, ctx.config.threads)
    lowered = sum(1 for layer in layers if layer["precision"] == precision)
    caps = cpu_capabilities()
    note = None
    if not lowered:
        note = (f"OpenVINO ran every layer in fp32: this CPU cannot run {precision} natively "
                f"(OPTIMIZATION_CAPABILITIES: {', '.join(caps)})")
    return Candidate(
        backend="openvino", precision=precision, options={"precision": hint}, file=path,
        baseline_file=fp32, baseline_options={"precision": Precision.FP32.element}, layers=layers,
        details={"tool": "openvino INFERENCE_PRECISION_HINT", "hint": hint, "capabilities": caps,
                 "weights_stored_as": "fp16" if precision == "fp16" else "fp32",
                 f"{precision}_layers": lowered, "layers": len(layers), **details},
        runs_lower=lowered > 0, note=note)


@register_method("bf16", "openvino", "bf16 arithmetic via OpenVINO's inference precision hint",
                 requires=(("openvino", "openvino"),))
def build_bf16(ctx: BuildContext) -> Candidate:
    return _build(ctx, "bf16")


@register_method("fp16", "openvino", "fp16 weights and arithmetic via OpenVINO's inference precision hint",
                 requires=(("openvino", "openvino"),))
def build_fp16(ctx: BuildContext) -> Candidate:
    return _build(ctx, "fp16")
