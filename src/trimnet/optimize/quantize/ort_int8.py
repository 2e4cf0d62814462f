"""INT8 post-training static quantization on onnxruntime: ``quantize_static`` in QDQ format.

The fp32 export is pre-processed (``quant_pre_process``: shape inference and graph
cleanup), then QuantizeLinear/DequantizeLinear pairs are inserted with activation ranges
calibrated (min/max) on training samples: uint8 activations, int8 weights per channel
(U8S8, the fast path of onnxruntime's x86 kernels). onnxruntime folds each Q/DQ group into
an integer kernel (QLinearConv, QGemm, ...) when it loads the model. Saved as ``model_int8.onnx``.
"""

from __future__ import annotations

import numpy as np

from trimnet.errors import require
from trimnet.optimize.quantize.method import BuildContext, Candidate, register_method
from trimnet.optimize.quantize.onnx_common import ort_runtime_ops, preprocessed, qdq_layers, set_metadata
from trimnet.runtime.export import INPUT_NAME

FILE = "model_int8.onnx"
CALIBRATION_BATCH = 32


def _reader(samples: np.ndarray):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter([samples[i:i + CALIBRATION_BATCH] for i in range(0, len(samples), CALIBRATION_BATCH)])

        def get_next(self) -> dict | None:
            batch = next(self._batches, None)
            return None if batch is None else {INPUT_NAME: np.ascontiguousarray(batch, dtype=np.float32)}

    return Reader()


@register_method("int8", "onnxruntime", "static INT8 (QDQ) with onnxruntime quantize_static (calibrated)",
                 requires=(("onnxruntime", "onnx"), ("onnx", "onnx")))
def build(ctx: BuildContext) -> Candidate:
    require("onnxruntime", "onnx")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    cfg = ctx.config
    fp32 = ctx.onnx()
    pre = preprocessed(fp32)
    path = ctx.workdir / FILE
    quantize_static(str(pre), str(path), _reader(ctx.calibration), quant_format=QuantFormat.QDQ,
                    per_channel=cfg.per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    set_metadata(path, {**ctx.metadata, "trimnet.precision": "int8"})
    layers = qdq_layers(path)
    int8 = sum(1 for layer in layers if layer["precision"] == "int8")
    return Candidate(
        backend="onnxruntime", precision="int8", options={}, file=path, baseline_file=fp32, layers=layers,
        details={"tool": "onnxruntime.quantization.quantize_static", "format": "QDQ",
                 "weights": "int8 symmetric " + ("per-channel" if cfg.per_channel else "per-tensor"),
                 "activations": "uint8 per-tensor (min/max calibration)", "calibration_samples": len(ctx.calibration),
                 "int8_layers": int8, "layers": len(layers), **ort_runtime_ops(path, ctx.workdir, cfg.threads)},
        runs_lower=int8 > 0, note=None if int8 else "quantize_static quantized no layer of this model")
