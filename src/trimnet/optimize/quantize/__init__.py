"""Lower precision: bf16/fp16 where the runtime has it, INT8 static (calibrated) and dynamic.

``quantize(model, data, QuantizeConfig("int8", backend="openvino"))`` builds the model at
the lower precision with the backend's own tool (one file per method: NNCF for OpenVINO,
``quantize_static``/``quantize_dynamic`` for onnxruntime, a dtype cast for PyTorch),
measures test accuracy and speed against fp32 on the same backend, keeps the faster one,
and saves it as an ONNX or OpenVINO IR file beside the run's ``model.json``.
"""

from trimnet.optimize.quantize import openvino_int8, openvino_lowp, ort_dynamic, ort_int8, torch_lowp  # noqa: F401
from trimnet.optimize.quantize.api import quantize
from trimnet.optimize.quantize.config import DEFAULT_BACKEND, PRECISIONS, QuantizeConfig
from trimnet.optimize.quantize.method import METHODS, BuildContext, Candidate, Method, list_methods, register_method
from trimnet.optimize.quantize.result import AccuracyDropError, Latency, ParityMismatch, QuantizeResult
from trimnet.optimize.quantize.saving import load_quantized, runtime_model

__all__ = ["AccuracyDropError", "BuildContext", "Candidate", "DEFAULT_BACKEND", "Latency", "METHODS", "Method",
           "PRECISIONS", "ParityMismatch", "QuantizeConfig", "QuantizeResult", "list_methods", "load_quantized", "quantize",
           "register_method", "runtime_model"]
