"""Inference runtimes: export (ONNX, OpenVINO IR) with parity checks, and backends behind one interface.

``export(model, "model.onnx", x)`` writes and checks an export; ``load_runner("openvino",
model, x)`` gives a ``Runner`` whose ``run`` maps numpy batches to numpy logits;
``list_backends()`` names the backends usable here. onnx, onnxruntime and openvino are
imported only when a function needs them.
"""

from trimnet.runtime.backend import (
    BACKENDS,
    Backend,
    Runner,
    backend_status,
    get_backend,
    list_backends,
    load_runner,
    register_backend,
)
from trimnet.runtime.errors import BackendUnavailableError, ExportError, ParityError
from trimnet.runtime.export import DEFAULT_OPSET, ExportResult, check_file, export
from trimnet.runtime.parity import ParityReport, Tolerance, check_parity

__all__ = [
    "BACKENDS", "Backend", "BackendUnavailableError", "DEFAULT_OPSET", "ExportError", "ExportResult", "ParityError",
    "ParityReport", "Runner", "Tolerance", "backend_status", "check_file", "check_parity", "export", "get_backend",
    "list_backends", "load_runner", "register_backend",
]
