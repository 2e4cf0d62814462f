"""INT8 post-training static quantization on OpenVINO, through NNCF (``nncf.quantize``).

NNCF inserts FakeQuantize operations calibrated on training samples (symmetric per-channel
weights by default) into the IR and corrects the biases for the rounding (full bias
correction by default: on the digits CNN it keeps one more test sample right than the
fast one, at about twice the calibration time on ResNet-18; ``fast_bias_correction``); OpenVINO's CPU plugin then runs
the quantized convolutions and matrix products in int8. Saved as ``model_int8.xml/.bin``.
"""

from __future__ import annotations

import contextlib
import io
import logging
from typing import Iterator

from trimnet.errors import require
from trimnet.optimize.quantize.method import BuildContext, Candidate, register_method
from trimnet.optimize.quantize.openvino_common import runtime_layers, save_ir, to_ir

FILE = "model_int8.xml"


@contextlib.contextmanager
def quiet_nncf(nncf) -> Iterator[None]:
    """NNCF logs at INFO and draws progress bars on stdout; keep both off the user's screen."""
    logger = logging.getLogger("nncf")
    level = logger.level
    nncf.set_log_level(logging.WARNING)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)


@register_method("int8", "openvino", "static INT8 with NNCF post-training quantization (calibrated)",
                 requires=(("openvino", "openvino"), ("nncf", "openvino")))
def build(ctx: BuildContext) -> Candidate:
    require("openvino", "openvino")
    logging.getLogger("nncf").setLevel(logging.WARNING)  # before the import, which logs what it found
    nncf = require("nncf", "openvino")
    cfg = ctx.config
    fp32 = ctx.onnx()
    model = to_ir(fp32, {**ctx.metadata, "trimnet.precision": "int8"})
    samples = [ctx.calibration[i:i + 1] for i in range(len(ctx.calibration))]
    advanced = None
    if not cfg.per_channel:
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, QuantizationParameters

        advanced = AdvancedQuantizationParameters(weights_quantization_params=QuantizationParameters(per_channel=False))
    with quiet_nncf(nncf):
        quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=len(samples),
                                  target_device=nncf.TargetDevice.CPU, preset=nncf.QuantizationPreset.PERFORMANCE,
                                  fast_bias_correction=cfg.fast_bias_correction, advanced_parameters=advanced)
    path = save_ir(quantized, ctx.workdir / FILE)
    layers, details = runtime_layers(path, "f32", cfg.threads)
    how = f"weights int8 {'per-channel' if cfg.per_channel else 'per-tensor'}, inputs 8-bit per-tensor"
    for layer in layers:
        if layer["precision"] == "int8":
            layer["quantized"] = how
    int8 = sum(1 for layer in layers if layer["precision"] == "int8")
    note = None if int8 else "OpenVINO runs no layer in int8 here; the CPU plugin kept every layer in fp32"
    return Candidate(
        backend="openvino", precision="int8", options={"precision": "f32"}, file=path,
        baseline_file=fp32, baseline_options={"precision": "f32"}, layers=layers,
        details={"tool": "nncf.quantize", "nncf": nncf.__version__, "preset": "performance",
                 "bias_correction": "fast" if cfg.fast_bias_correction else "full",
                 "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor"),
                 "activations": "8-bit per-tensor", "calibration_samples": len(samples),
                 "int8_layers": int8, "layers": len(layers), **details},
        runs_lower=int8 > 0, note=note)
