"""Infer requests and responses over HTTP/REST: JSON, and the binary tensor data extension.

With the extension, a body is a JSON header of ``Inference-Header-Content-Length`` bytes
followed by the tensors' raw bytes: an input whose ``parameters.binary_data_size`` is set
takes that many bytes, in input order (little-endian numbers, row-major; BYTES elements
each a 4-byte length then the bytes). Outputs come back binary when the request sets
``parameters.binary_data_output`` or the output's ``parameters.binary_data``; the response
then carries the same header and each binary output its ``binary_data_size``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from trimnet.serve.protocol import (
    DATATYPES, INPUT_NAME, OUTPUTS, REGRESSION_OUTPUTS, InferRequest, InputSpec, OutputRequest, RequestError, Tensor,
    _kind, _short, check_input_header, decode_input, distinct_outputs, join_bytes, output_request, parse_json,
    request_options,
)

HEADER_LENGTH = "inference-header-content-length"


class HeaderCache:
    """Checked JSON headers of binary requests, by their bytes: a client sends the same header again and again.

    Only the header is kept (what it asks for, the input's datatype and shape), never the
    tensor data; at most ``size`` headers of at most ``max_bytes`` each, the oldest dropped first.
    """

    def __init__(self, size: int = 256, max_bytes: int = 4096):
        self.size = size
        self.max_bytes = max_bytes
        self._plans: dict[tuple, _Plan] = {}

    def plan(self, header: bytes, binary_bytes: int, spec: InputSpec, normalize: bool, top_k: int) -> _Plan:
        key = (header, binary_bytes, spec, normalize, top_k)
        found = self._plans.get(key)
        if found is None:
            found = _header_plan(header, binary_bytes, spec, normalize, top_k)
            if len(self._plans) >= self.size:
                del self._plans[next(iter(self._plans))]
            self._plans[key] = found
        return found


def parse_infer(body: bytes, spec: InputSpec, *, normalize: bool = True, top_k: int = 1,
                header_length: str | None = None, cache: HeaderCache | None = None) -> InferRequest:
    """Check a v2 infer request body (JSON, or JSON + binary tensors) against the model's input.

    ``cache`` remembers checked binary-request headers, so a repeated header is not parsed again.
    """
    if header_length is None:
        try:
            req = parse_json(body, "the request body")
        except RequestError as exc:
            if b'"binary_data_size"' in body[:4096]:
                raise RequestError(f"{exc}. It looks like a binary-data request: send the length of its JSON "
                                   "header in the Inference-Header-Content-Length header") from None
            raise
        return _plan(req, spec, normalize, top_k, 0).request(b"")
    if not (header_length.isascii() and header_length.isdigit()) or int(header_length) > len(body):
        raise RequestError(f"Inference-Header-Content-Length {header_length[:40]!r} must be a number of bytes "
                           f"no larger than the body ({len(body)} bytes)")
    n = int(header_length)
    header, binary = bytes(body[:n]), memoryview(body)[n:]
    if cache is not None and len(binary) and n <= cache.max_bytes:
        return cache.plan(header, len(binary), spec, normalize, top_k).request(binary)
    return _header_plan(header, len(binary), spec, normalize, top_k).request(binary)


@dataclass(frozen=True)
class _Plan:
    """A checked request header: everything but the input's values."""

    id: str | None
    outputs: tuple[OutputRequest, ...]
    top_k: int
    normalize: bool
    datatype: str
    shape: tuple[int, ...]
    count: int
    binary: bool  # the input's values follow the JSON header (else they are its 'data')
    data: Any = None

    def request(self, binary: memoryview | bytes) -> InferRequest:
        """The request, its input decoded from ``binary`` (or from the JSON 'data')."""
        raw = bytes(binary) if self.binary else None
        x = decode_input(self.datatype, list(self.shape), self.count, data=self.data, raw=raw)
        return InferRequest(x=None if isinstance(x, list) else x, texts=x if isinstance(x, list) else None,
                            id=self.id, outputs=self.outputs, top_k=self.top_k, normalize=self.normalize)


def _header_plan(header: bytes, binary_bytes: int, spec: InputSpec, normalize: bool, top_k: int) -> _Plan:
    return _plan(parse_json(header, "the request's JSON header"), spec, normalize, top_k, binary_bytes)


def _plan(req: Any, spec: InputSpec, normalize: bool, top_k: int, binary_bytes: int) -> _Plan:
    """Check a parsed request (JSON) against the model; ``binary_bytes`` follow its JSON header."""
    if not isinstance(req, dict):
        raise RequestError(f"the request body must be a JSON object with 'inputs', not {_kind(req)}")
    request_id = req.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f"'id' must be a string, not {_kind(request_id)}")
    params = req.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RequestError(f"'parameters' must be an object, not {_kind(params)}")
    normalize, top_k = request_options(params, spec.num_classes, normalize=normalize, top_k=top_k)
    binary_all = params.get("binary_data_output", False)
    if not isinstance(binary_all, bool):
        raise RequestError(f"parameters.binary_data_output must be true or false, not {_short(binary_all)}")
    datatype, shape, count, binary, data = _parse_inputs(req.get("inputs"), spec, binary_bytes)
    return _Plan(request_id, _parse_outputs(req.get("outputs"), binary_all, spec), top_k, normalize, datatype,
                 tuple(shape), count, binary, data)


def _parse_inputs(inputs: Any, spec: InputSpec, binary_bytes: int) -> tuple[str, list[int], int, bool, Any]:
    """The input's datatype, shape, element count, whether its values come binary, and else its JSON data."""
    if not isinstance(inputs, list) or not inputs:
        raise RequestError(f"'inputs' must be a list with one tensor {{'name': '{INPUT_NAME}', 'shape': "
                           f"{[-1, *spec.in_shape]}, 'datatype': 'FP32', 'data': [...]}}")
    if len(inputs) != 1:
        raise RequestError(f"'inputs' has {len(inputs)} tensors but the model takes one, '{INPUT_NAME}'")
    tensor = inputs[0]
    if not isinstance(tensor, dict):
        raise RequestError(f"inputs[0] must be an object with name, shape, datatype and data, not {_kind(tensor)}")
    params = tensor.get("parameters")
    params = {} if params is None else params
    if not isinstance(params, dict):
        raise RequestError(f"inputs[0].parameters must be an object, not {_kind(params)}")
    size = params.get("binary_data_size")
    needed = ("name", "shape", "datatype") if size is not None else ("name", "shape", "datatype", "data")
    missing = [k for k in needed if k not in tensor]
    if missing:
        raise RequestError(f"inputs[0] lacks {', '.join(repr(k) for k in missing)}")
    shape, count = check_input_header(tensor["name"], tensor["datatype"], tensor["shape"], spec)
    if size is None:
        if binary_bytes:
            raise RequestError(f"{binary_bytes} bytes follow the JSON header but no input sets "
                               "parameters.binary_data_size")
        return tensor["datatype"], shape, count, False, tensor["data"]
    if not isinstance(size, int) or isinstance(size, bool) or size != binary_bytes:
        raise RequestError(f"inputs[0].parameters.binary_data_size is {_short(size)} but {binary_bytes} bytes follow "
                           "the JSON header (Inference-Header-Content-Length)")
    if "data" in tensor:
        raise RequestError("inputs[0] has both 'data' and parameters.binary_data_size; send one")
    return tensor["datatype"], shape, count, True, None


def _parse_outputs(outputs: Any, binary_all: bool, spec: InputSpec):
    if outputs is None:
        return tuple(OutputRequest(o.name, binary_all) for o in spec.default_outputs)
    if not isinstance(outputs, list):
        raise RequestError(f"'outputs' must be a list of {{'name': ...}} objects, not {_kind(outputs)}")
    parsed = []
    for i, out in enumerate(outputs):
        if not isinstance(out, dict):
            raise RequestError(f"outputs[{i}]: unknown output {_short(out)}; the model's outputs are "
                               f"{', '.join(spec.outputs)}")
        params = out.get("parameters")
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise RequestError(f"outputs[{i}].parameters must be an object, not {_kind(params)}")
        parsed.append(output_request(i, out.get("name"), params.get("binary_data", binary_all),
                                     params.get("classification", params.get("class_count")), spec))
    return distinct_outputs(tuple(parsed)) or tuple(OutputRequest(o.name, binary_all) for o in spec.default_outputs)


class NonFinite(RequestError):
    """Outputs JSON cannot carry (NaN or infinity); binary outputs can."""


def encode_response(model_name: str, version: str, request: InferRequest, tensors: list[Tensor]) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the length of its JSON header."""
    binary_of = {o.name: o.binary for o in request.outputs}
    blobs: list[bytes] = []
    out = []
    for t in tensors:
        entry: dict[str, Any] = {"name": t.name, "datatype": t.datatype, "shape": t.shape}
        if binary_of.get(t.name):
            blob = join_bytes(t.data) if t.datatype == "BYTES" else np.ascontiguousarray(
                t.data, dtype=np.dtype(t.data.dtype).newbyteorder("<")).tobytes()
            entry["parameters"] = {"binary_data_size": len(blob)}
            blobs.append(blob)
        elif t.datatype == "BYTES":
            entry["data"] = [b.decode("utf-8", "replace") for b in t.data]
        else:
            if t.data.dtype.kind == "f" and not np.isfinite(t.data).all():
                raise NonFinite(f"the model's output '{t.name}' holds NaN or infinite values for these inputs, which "
                                "JSON cannot carry; ask for it in binary (outputs[].parameters.binary_data: true) "
                                "or send inputs in the range the model was trained on", status=422)
            entry["data"] = t.data.ravel().tolist()
        out.append(entry)
    payload: dict[str, Any] = {"model_name": model_name, "model_version": version, "outputs": out}
    if request.id is not None:
        payload["id"] = request.id
    header = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


# JSON Schemas for /openapi.json, written inline (no $refs) so that any OpenAPI tool reads them
TENSOR_SCHEMA = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string", "example": INPUT_NAME},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}, "example": [1, 1, 8, 8]},
        "datatype": {"type": "string", "enum": list(DATATYPES), "example": "FP32"},
        "data": {"type": "array", "items": {}, "description": "values, flat in row-major order (or nested); "
                                                              "absent when parameters.binary_data_size is set"},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}},
    },
}
INFER_REQUEST_SCHEMA = {
    "type": "object",
    "required": ["inputs"],
    "properties": {
        "id": {"type": "string"},
        "parameters": {
            "type": "object",
            "description": "normalize: apply the training normalization (default: the server's); top_k: classes "
                           "per sample in labels/classes/confidences (a regression model ignores it); "
                           "binary_data_output: every output binary",
            "properties": {"normalize": {"type": "boolean"}, "top_k": {"type": "integer", "minimum": 1},
                           "binary_data_output": {"type": "boolean"}},
        },
        "inputs": {"type": "array", "items": TENSOR_SCHEMA, "minItems": 1, "maxItems": 1},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "enum": [*OUTPUTS, *REGRESSION_OUTPUTS],
                     "description": "classification: probabilities, labels, classes, confidences; "
                                    "regression: values"},
            "parameters": {"type": "object", "properties": {"binary_data": {"type": "boolean"},
                                                            "class_count": {"type": "integer", "minimum": 0}}}}}},
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


def json_content(schema: dict) -> dict:
    """An OpenAPI response or body whose JSON follows ``schema``."""
    return {"content": {"application/json": {"schema": schema}}}


ERRORS = {code: {"description": why, **json_content(ERROR_SCHEMA)} for code, why in {
    400: "malformed JSON, a tensor with the wrong name, shape, datatype or values, or an output the model "
         "does not have (class_count on a regression model)",
    401: "a token is configured and the request lacks it",
    404: "no model of that name",
    413: "the request body (or its sample count) is too large",
    422: "the model's outputs for these inputs are NaN or infinite, which JSON cannot carry (ask for binary)",
    503: "the queue is full or the server is shutting down; retry after Retry-After seconds",
}.items()}


def error_response(status: int, message: str, headers: dict | None = None):
    """``{"error": message}`` with ``status`` (a Starlette ``JSONResponse``): how routes and handlers refuse."""
    from starlette.responses import JSONResponse

    from trimnet.serve.protocol import error_body

    return JSONResponse(error_body(message), status_code=status, headers=headers)
