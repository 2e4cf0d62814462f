"""KServe v2 / Open Inference Protocol JSON: check infer requests, build responses and metadata.

Every problem with a request raises ``RequestError`` with the HTTP status to answer and a
message that names the field at fault. Nothing here knows about HTTP frameworks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from trimnet.errors import TrimnetError

INPUT_NAME = "input"
# output name -> (datatype, what it holds)
OUTPUTS: dict[str, tuple[str, str]] = {
    "probabilities": ("FP32", "softmax class scores, shape [batch, classes]"),
    "labels": ("INT64", "indices of the top-k classes, best first, shape [batch, k]"),
    "classes": ("BYTES", "names of the top-k classes, best first, shape [batch, k]"),
    "confidences": ("FP32", "probabilities of the top-k classes, shape [batch, k]"),
}
# JSON numbers arrive as Python floats and ints; these datatypes are read as numbers and run as FP32
FLOAT_TYPES = ("FP32", "FP64", "FP16")
DATATYPES = ("BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
             "FP64", "BYTES")


class RequestError(TrimnetError):
    """A request the server refuses; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass
class InferRequest:
    x: np.ndarray  # (batch, *in_shape) float32, finite
    id: str | None = None
    outputs: tuple[str, ...] = tuple(OUTPUTS)
    top_k: int = 1
    normalize: bool = True


def parse_json(body: bytes) -> Any:
    if not body:
        raise RequestError("the request body is empty; send a JSON object with 'inputs'")
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError("the request body is nested too deeply to be a KServe v2 request") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int too large
        raise RequestError(f"the request body is not valid JSON: {exc}") from None


def parse_infer(body: bytes, in_shape: Sequence[int], num_classes: int, *, normalize: bool = True,
                top_k: int = 1) -> InferRequest:
    """Check a v2 infer request body against the model's input; defaults come from the server."""
    req = parse_json(body)
    if not isinstance(req, dict):
        raise RequestError(f"the request body must be a JSON object with 'inputs', not {_kind(req)}")
    request_id = req.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"'id' must be a string, not {_kind(request_id)}")
    params = req.get("parameters", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise RequestError(f"'parameters' must be an object, not {_kind(params)}")
    normalize = params.get("normalize", normalize)
    if not isinstance(normalize, bool):
        raise RequestError(f"parameters.normalize must be true or false, not {normalize!r}")
    top_k = params.get("top_k", min(top_k, num_classes))
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= num_classes:
        raise RequestError(f"parameters.top_k must be an integer from 1 to {num_classes} (the model's classes), "
                           f"not {top_k!r}")
    return InferRequest(x=_parse_inputs(req.get("inputs"), tuple(in_shape)), id=request_id,
                        outputs=_parse_outputs(req.get("outputs")), top_k=top_k, normalize=normalize)


def _parse_inputs(inputs: Any, in_shape: tuple[int, ...]) -> np.ndarray:
    expected = [-1, *in_shape]
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(f"'inputs' must be a list with one tensor {{'name': '{INPUT_NAME}', 'shape': {expected}, "
                           f"'datatype': 'FP32', 'data': [...]}}")
    if len(inputs) != 1:
        raise RequestError(f"'inputs' has {len(inputs)} tensors but the model takes one, '{INPUT_NAME}'")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[0] must be an object with name, shape, datatype and data, not {_kind(tensor)}")
    missing = [k for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if missing:
        raise RequestError(f"inputs[0] lacks {', '.join(repr(k) for k in missing)}")
    name, shape, datatype = tensor["name"], tensor["shape"], tensor["datatype"]
    if name != INPUT_NAME:
        raise RequestError(f"unknown input {name!r}; the model's input is named '{INPUT_NAME}'")
    if not isinstance(datatype, str) or datatype not in FLOAT_TYPES:
        known = "" if datatype in DATATYPES else " (not a v2 datatype)"
        raise RequestError(f"input '{INPUT_NAME}': datatype {datatype!r}{known} is not supported; "
                           f"the model takes FP32 (FP64 and FP16 are accepted and converted)")
    if (not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape)
            or len(shape) != len(expected) or tuple(shape[1:]) != in_shape or shape[0] < 1):
        raise RequestError(f"input '{INPUT_NAME}': shape {_short(shape)} does not match the model's {expected} "
                           f"(batch first, batch at least 1)")
    count = math.prod(shape)
    data = tensor["data"]
    if not isinstance(data, list):
        raise RequestError(f"input '{INPUT_NAME}': 'data' must be a list of numbers, not {_kind(data)}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise RequestError(f"input '{INPUT_NAME}': 'data' must be a flat (or evenly nested) list of numbers") from None
    if arr.dtype.kind not in "iuf":
        raise RequestError(f"input '{INPUT_NAME}': 'data' must hold only numbers "
                           f"(found {'booleans' if arr.dtype.kind == 'b' else 'other values'})")
    if arr.size != count or (arr.ndim > 1 and list(arr.shape) != shape):
        nested = f" nested as {list(arr.shape)}" if arr.ndim > 1 else ""
        raise RequestError(f"input '{INPUT_NAME}': 'data' holds {arr.size} values{nested} but shape {shape} "
                           f"needs {count} values (flat in row-major order, or nested in that shape)")
    with np.errstate(over="ignore", invalid="ignore"):
        x = arr.astype(np.float32).reshape(shape)
    if not np.isfinite(x).all():
        raise RequestError(f"input '{INPUT_NAME}': 'data' holds NaN or infinite values (or values beyond FP32 range)")
    return x


def _parse_outputs(outputs: Any) -> tuple[str, ...]:
    if outputs is None:
        return tuple(OUTPUTS)
    if not isinstance(outputs, list):
        raise RequestError(f"'outputs' must be a list of {{'name': ...}} objects, not {_kind(outputs)}")
    names = []
    for i, out in enumerate(outputs):
        name = out.get("name") if isinstance(out, dict) else None
        if name not in OUTPUTS:
            raise RequestError(f"outputs[{i}]: unknown output {_short(name)}; the model's outputs are "
                               f"{', '.join(OUTPUTS)}")
        names.append(name)
    return tuple(names) or tuple(OUTPUTS)


def infer_response(model_name: str, request: InferRequest, probabilities: np.ndarray,
                   class_names: Sequence[str]) -> dict:
    """The v2 response: the requested outputs as flat row-major tensors."""
    batch, classes = probabilities.shape
    k = request.top_k
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]  # ties: the lower index first, like argmax
    outputs = []
    for name in request.outputs:
        if name == "probabilities":
            shape, data = [batch, classes], probabilities.ravel().tolist()
        elif name == "labels":
            shape, data = [batch, k], top.ravel().tolist()
        elif name == "classes":
            shape, data = [batch, k], [class_names[i] for i in top.ravel().tolist()]
        else:
            shape, data = [batch, k], np.take_along_axis(probabilities, top, axis=1).ravel().tolist()
        outputs.append({"name": name, "datatype": OUTPUTS[name][0], "shape": shape, "data": data})
    out: dict[str, Any] = {"model_name": model_name, "model_version": "1", "outputs": outputs}
    if request.id is not None:
        out["id"] = request.id
    return out


def model_metadata(name: str, in_shape: Sequence[int], class_names: Sequence[str], platform: str,
                   parameters: dict | None = None) -> dict:
    classes = len(class_names)
    shapes = {"probabilities": [-1, classes], "labels": [-1, -1], "classes": [-1, -1], "confidences": [-1, -1]}
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [{"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *in_shape]}],
        "outputs": [{"name": n, "datatype": dt, "shape": shapes[n]} for n, (dt, _) in OUTPUTS.items()],
        "parameters": {"class_names": list(class_names), **(parameters or {})},
    }


def error_body(message: str) -> dict:
    return {"error": message}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _short(value: Any, limit: int = 60) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# JSON Schemas for /openapi.json, written inline (no $refs) so that any OpenAPI tool reads them
TENSOR_SCHEMA = {
    "type": "object",
    "required": ["name", "shape", "datatype", "data"],
    "properties": {
        "name": {"type": "string", "example": INPUT_NAME},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "example": [1, 1, 8, 8]},
        "datatype": {"type": "string", "enum": list(DATATYPES), "example": "FP32"},
        "data": {"type": "array", "items": {}, "description": "values, flat in row-major order (or nested)"},
        "parameters": {"type": "object"},
    },
}
INFER_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "description": "normalize: apply the training normalization (default: the server's); "
                           "top_k: classes per sample in labels/classes/confidences",
            "properties": {"normalize": {"type": "boolean"}, "top_k": {"type": "integer", "minimum": 1}},
        },
        "inputs": {"type": "array", "items": TENSOR_SCHEMA, "minItems": 1, "maxItems": 1},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "enum": list(OUTPUTS)}, "parameters": {"type": "object"}}}},
    },
}
INFER_RESPONSE_SCHEMA = {
    "type": "object",
    "required": ["model_name", "outputs"],
    "properties": {
        "model_name": {"type": "string"},
        "model_version": {"type": "string"},
        "id": {"type": "string"},
        "outputs": {"type": "array", "items": TENSOR_SCHEMA},
    },
}
ERROR_SCHEMA = {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
