"""The Open Inference Protocol (KServe v2) in plain objects: check inputs, compute the outputs asked for.

Both transports meet here: HTTP/REST (``rest.py``: JSON and the binary tensor data
extension) and gRPC (``grpc_server.py``) turn a request into an ``InferRequest`` with
``decode_input`` and ``output_request``, and turn what the model gives into ``Tensor``s:
a classifier's probabilities with ``outputs``, a regression model's values with
``value_outputs``. Every problem with a request raises ``RequestError`` with the HTTP status
to answer and a message that names the field at fault. Nothing here knows about a framework.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from trimnet.errors import TrimnetError

INPUT_NAME = "input"
# output name -> (datatype, what it holds): a classification model's outputs
OUTPUTS: dict[str, tuple[str, str]] = {
    "probabilities": ("FP32", "softmax class scores, shape [batch, classes]"),
    "labels": ("INT64", "indices of the top-k classes, best first, shape [batch, k]"),
    "classes": ("BYTES", "names of the top-k classes, best first, shape [batch, k]"),
    "confidences": ("FP32", "probabilities of the top-k classes, shape [batch, k]"),
}
VALUES = "values"  # a regression model's one output
REGRESSION_OUTPUTS: dict[str, tuple[str, str]] = {VALUES: ("FP32", "predicted values, shape [batch, outputs]")}
TASK_OUTPUTS = {"classification": OUTPUTS, "regression": REGRESSION_OUTPUTS}  # the tasks trimnet serve answers
NUMPY_TYPES = {"BOOL": "?", "UINT8": "u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "i1",
               "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}
DATATYPES = (*NUMPY_TYPES, "BYTES")
NUMBER_TYPES = tuple(t for t in NUMPY_TYPES if t != "BOOL")  # read as numbers, run as FP32
CLASSIFIED = "probabilities"  # the output the classification extension (class_count) applies to


class RequestError(TrimnetError):
    """A request the server refuses; ``status`` is the HTTP code to answer with."""

    def __init__(self, message: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.headers = headers or {}


@dataclass(frozen=True)
class OutputRequest:
    """One requested output: binary (the binary tensor data extension) and class_count (classification)."""

    name: str
    binary: bool = False
    class_count: int = 0


DEFAULT_OUTPUTS = tuple(OutputRequest(n) for n in OUTPUTS)


@dataclass
class InferRequest:
    x: np.ndarray | None = None  # (batch, *in_shape) float32, finite; None when texts came instead
    texts: list[str] | None = None  # a BYTES input, decoded; the model's encode_text makes x of them
    id: str | None = None
    outputs: tuple[OutputRequest, ...] = DEFAULT_OUTPUTS
    top_k: int = 1
    normalize: bool = True

    @property
    def batch(self) -> int:
        return len(self.texts) if self.texts is not None else len(self.x)


@dataclass
class Tensor:
    """An output: ``data`` is a numpy array, or a list of ``bytes`` for BYTES."""

    name: str
    datatype: str
    shape: list[int]
    data: Any
    parameters: dict = field(default_factory=dict)


@dataclass(frozen=True)
class InputSpec:
    """What the model takes and gives: ``in_shape`` per sample; ``text``: a BYTES input is accepted
    (encode_text); ``task``: classification (``num_classes`` scores) or regression (``num_values`` values)."""

    in_shape: tuple[int, ...]
    num_classes: int
    text: bool = False
    task: str = "classification"
    num_values: int = 0  # regression: predicted values per sample

    @property
    def outputs(self) -> dict[str, tuple[str, str]]:
        """The model's outputs: name -> (datatype, what it holds)."""
        return TASK_OUTPUTS[self.task]

    @property
    def default_outputs(self) -> tuple[OutputRequest, ...]:
        """What a request that names no outputs gets: all of them."""
        return DEFAULT_OUTPUTS if self.task == "classification" else tuple(OutputRequest(n) for n in self.outputs)


def parse_json(body: bytes, what: str = "the request body") -> Any:
    if not body:
        raise RequestError(f"{what} is empty; send a JSON object with 'inputs'")
    try:
        return json.loads(body)
    except RecursionError:
        raise RequestError(f"{what} is nested too deeply to be a KServe v2 request") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, int too large
        raise RequestError(f"{what} is not valid JSON: {exc}") from None


def request_options(params: Any, num_classes: int, *, normalize: bool, top_k: int) -> tuple[bool, int]:
    """``parameters.normalize`` and ``parameters.top_k`` of a request, the server's defaults where absent.

    ``num_classes`` 0 (a regression model): ``top_k`` means nothing and is ignored, like any
    parameter that does not apply."""
    normalize = params.get("normalize", normalize)
    if not isinstance(normalize, bool):
        raise RequestError(f"parameters.normalize must be true or false, not {_short(normalize)}")
    if num_classes == 0:
        return normalize, 1
    top_k = params.get("top_k", min(top_k, num_classes))
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= num_classes:
        raise RequestError(f"parameters.top_k must be an integer from 1 to {num_classes} (the model's classes), "
                           f"not {_short(top_k)}")
    return normalize, top_k


def check_input_header(name: Any, datatype: Any, shape: Any, spec: InputSpec) -> tuple[list[int], int]:
    """The checked shape and element count of an input tensor (before its data is read)."""
    expected = [-1, *spec.in_shape]
    if name != INPUT_NAME:
        raise RequestError(f"unknown input {_short(name)}; the model's input is named '{INPUT_NAME}'")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise RequestError(f"input '{INPUT_NAME}': shape {_short(shape)} does not match the model's "
                           f"{[-1, 1] if spec.text else expected} (a list of integers, batch first)")
    if datatype == "BYTES":
        if not spec.text:
            raise RequestError(f"input '{INPUT_NAME}': datatype 'BYTES' (text) needs a model with a tokenizer "
                               "(a text run directory with encode_text); send FP32 numbers of shape "
                               f"{expected} to this one")
        if len(shape) not in (1, 2) or shape[0] < 1 or (len(shape) == 2 and shape[1] != 1) or shape[0] > 2**31:
            raise RequestError(f"input '{INPUT_NAME}': a BYTES input has shape [batch] or [batch, 1] (one string "
                               f"per sample), not {_short(shape)}")
        return shape, shape[0]
    if not isinstance(datatype, str) or datatype not in NUMBER_TYPES:
        known = "" if isinstance(datatype, str) and datatype in DATATYPES else " (not a v2 datatype)"
        text = " or BYTES (text)" if spec.text else ""
        raise RequestError(f"input '{INPUT_NAME}': datatype {_short(datatype)}{known} is not supported; the model "
                           f"takes FP32{text} (other number types are accepted and converted)")
    if len(shape) != len(expected) or tuple(shape[1:]) != spec.in_shape or shape[0] < 1:
        raise RequestError(f"input '{INPUT_NAME}': shape {_short(shape)} does not match the model's {expected} "
                           f"(batch first, batch at least 1)")
    return shape, math.prod(shape)


def decode_input(datatype: str, shape: list[int], count: int, *, data: Any = None, raw: bytes | None = None,
                 where: str = "'data'"):
    """The input's values, from JSON ``data`` (a list) or ``raw`` bytes (binary extension, gRPC raw contents).

    Numbers come back as a finite float32 array of ``shape``; BYTES as a list of ``count`` str.
    ``where`` names ``data`` in messages (gRPC: the typed contents field).
    """
    if datatype == "BYTES":
        items = split_bytes(raw, count) if raw is not None else _json_strings(data, count)
        try:
            return [b.decode("utf-8") if isinstance(b, bytes) else b for b in items]
        except UnicodeDecodeError:
            raise RequestError(f"input '{INPUT_NAME}': a BYTES element is not valid UTF-8 text") from None
    if raw is not None:
        dtype = np.dtype(NUMPY_TYPES[datatype])
        if len(raw) != count * dtype.itemsize:
            raise RequestError(f"input '{INPUT_NAME}': {len(raw)} bytes of binary data, but shape {shape} of "
                               f"{datatype} needs {count * dtype.itemsize}")
        arr = np.frombuffer(raw, dtype=dtype)
    else:
        arr = _json_numbers(data, shape, count, datatype, where)
    with np.errstate(over="ignore", invalid="ignore"):
        x = arr.astype(np.float32).reshape(shape)
    if not np.isfinite(x).all():
        raise RequestError(f"input '{INPUT_NAME}': {where} holds NaN or infinite values (or values beyond FP32 range)")
    return x


def _json_numbers(data: Any, shape: list[int], count: int, datatype: str, where: str) -> np.ndarray:
    if not isinstance(data, list):
        raise RequestError(f"input '{INPUT_NAME}': {where} must be a list of numbers, not {_kind(data)}")
    try:
        arr = np.asarray(data)
    except (ValueError, TypeError, OverflowError, RecursionError):
        raise RequestError(f"input '{INPUT_NAME}': {where} must be a flat (or evenly nested) list of numbers") from None
    if arr.dtype.kind not in "iuf":
        raise RequestError(f"input '{INPUT_NAME}': {where} must hold only numbers "
                           f"(found {'booleans' if arr.dtype.kind == 'b' else 'other values'})")
    if arr.size != count or (arr.ndim > 1 and list(arr.shape) != shape):
        nested = f" nested as {list(arr.shape)}" if arr.ndim > 1 else ""
        raise RequestError(f"input '{INPUT_NAME}': {where} holds {arr.size} values{nested} but shape {shape} "
                           f"needs {count} values (flat in row-major order, or nested in that shape)")
    dtype = np.dtype(NUMPY_TYPES[datatype])
    if dtype.kind in "iu" and arr.size:
        if arr.dtype.kind == "f" and not np.array_equal(arr, np.trunc(arr)):
            raise RequestError(f"input '{INPUT_NAME}': {where} holds fractions, but the datatype is {datatype}; "
                               "send integers, or say FP32")
        info = np.iinfo(dtype)
        if arr.min() < info.min or arr.max() > info.max:
            raise RequestError(f"input '{INPUT_NAME}': {where} holds values outside {datatype}'s range "
                               f"[{info.min}, {info.max}]; send a wider datatype (FP32)")
    return arr


def _json_strings(data: Any, count: int) -> list:
    flat = data
    if isinstance(data, list) and data and all(isinstance(d, list) for d in data):
        flat = [s for row in data for s in row]
    if not isinstance(flat, list) or not all(isinstance(s, str) for s in flat):
        raise RequestError(f"input '{INPUT_NAME}': BYTES 'data' must be a list of strings")
    if len(flat) != count:
        raise RequestError(f"input '{INPUT_NAME}': 'data' holds {len(flat)} strings but the shape needs {count}")
    return flat


def split_bytes(raw: bytes, count: int) -> list[bytes]:
    """BYTES elements from their binary form: each a 4-byte little-endian length, then that many bytes."""
    items, at = [], 0
    for _ in range(count):
        if at + 4 > len(raw):
            raise RequestError(f"input '{INPUT_NAME}': the binary BYTES data ends before element {len(items)} "
                               f"of {count} (each element: a 4-byte little-endian length, then the bytes)")
        (n,) = struct.unpack_from("<I", raw, at)
        if at + 4 + n > len(raw):
            raise RequestError(f"input '{INPUT_NAME}': BYTES element {len(items)} says {n} bytes but fewer follow")
        items.append(bytes(raw[at + 4:at + 4 + n]))
        at += 4 + n
    if at != len(raw):
        raise RequestError(f"input '{INPUT_NAME}': {len(raw) - at} bytes of binary data left after {count} "
                           "BYTES elements")
    return items


def join_bytes(items: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def distinct_outputs(outputs: tuple[OutputRequest, ...]) -> tuple[OutputRequest, ...]:
    """``outputs`` as requested, refused when one is asked for twice (HTTP and gRPC alike)."""
    seen = set()
    for o in outputs:
        if o.name in seen:
            raise RequestError(f"output {o.name!r} is requested twice; ask for each once")
        seen.add(o.name)
    return outputs


def output_request(i: int, name: Any, binary: Any, class_count: Any, spec: InputSpec) -> OutputRequest:
    """One entry of a request's ``outputs``, checked against the model's outputs."""
    num_classes = spec.num_classes
    if spec.task != "classification" and class_count not in (None, 0):
        raise RequestError(f"outputs[{i}]: class_count (the classification extension) needs a classification "
                           f"model; this is a {spec.task} model, whose output '{VALUES}' holds predicted values, "
                           "not class scores: leave class_count out")
    if not isinstance(name, str) or name not in spec.outputs:
        kind = f" (a {spec.task} model: no class scores)" if spec.task != "classification" else ""
        raise RequestError(f"outputs[{i}]: unknown output {_short(name)}; the model's outputs are "
                           f"{', '.join(spec.outputs)}{kind}")
    if not isinstance(binary, bool):
        raise RequestError(f"outputs[{i}].parameters.binary_data must be true or false, not {_short(binary)}")
    if class_count is None:
        class_count = 0
    if not isinstance(class_count, int) or isinstance(class_count, bool) or not 0 <= class_count <= num_classes:
        raise RequestError(f"outputs[{i}].parameters.class_count must be an integer from 0 to {num_classes} (the "
                           f"model's classes), not {_short(class_count)}")
    if class_count and name != CLASSIFIED:
        raise RequestError(f"outputs[{i}]: class_count (classification) applies to the '{CLASSIFIED}' output, "
                           f"not {name!r}")
    return OutputRequest(name, binary, class_count)


def outputs(request: InferRequest, probabilities: np.ndarray, class_names: Sequence[str]) -> list[Tensor]:
    """The requested outputs of one request, in the order asked."""
    batch, classes = probabilities.shape
    k = request.top_k
    # ties: the lower index first, like argmax; NaN scores (a diverging model) sort last
    order = np.argsort(-probabilities, axis=1, kind="stable")
    top = order[:, :k]
    rows = np.arange(batch)[:, None]  # indexing by rows and columns: take_along_axis cost 4 % of a request
    encoded = [c.encode("utf-8") for c in class_names]
    tensors = []
    for out in request.outputs:
        if out.class_count:
            n = out.class_count
            best = order[:, :n]
            values = probabilities[rows, best]
            data = [f"{float(v):f}:{i}:{class_names[i]}".encode("utf-8")
                    for v, i in zip(values.ravel().tolist(), best.ravel().tolist())]
            tensors.append(Tensor(out.name, "BYTES", [batch, n], data))
        elif out.name == "probabilities":
            tensors.append(Tensor(out.name, "FP32", [batch, classes], probabilities))
        elif out.name == "labels":
            tensors.append(Tensor(out.name, "INT64", [batch, k], top.astype(np.int64)))
        elif out.name == "classes":
            tensors.append(Tensor(out.name, "BYTES", [batch, k], [encoded[i] for i in top.ravel().tolist()]))
        else:
            tensors.append(Tensor(out.name, "FP32", [batch, k], probabilities[rows, top]))
    return tensors


def value_outputs(request: InferRequest, values: np.ndarray) -> list[Tensor]:
    """A regression model's requested outputs: its predicted values, ``[batch, outputs]`` FP32."""
    values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    return [Tensor(out.name, "FP32", list(values.shape), values) for out in request.outputs]


def output_shapes(spec: InputSpec) -> dict[str, list[int]]:
    """Each output's shape, batch first (-1: varies)."""
    if spec.task == "regression":
        return {VALUES: [-1, spec.num_values]}
    return {"probabilities": [-1, spec.num_classes], "labels": [-1, -1], "classes": [-1, -1], "confidences": [-1, -1]}


def model_metadata(name: str, spec: InputSpec, class_names: Sequence[str], platform: str,
                   parameters: dict | None = None) -> dict:
    shapes = output_shapes(spec)
    inputs = ({"name": INPUT_NAME, "datatype": "BYTES", "shape": [-1, 1]} if spec.text
              else {"name": INPUT_NAME, "datatype": "FP32", "shape": [-1, *spec.in_shape]})
    described = {"class_names": list(class_names)} if spec.task == "classification" else {}
    return {
        "name": name,
        "versions": ["1"],
        "platform": platform,
        "inputs": [inputs],
        "outputs": [{"name": n, "datatype": dt, "shape": shapes[n]} for n, (dt, _) in spec.outputs.items()],
        "parameters": {"task": spec.task, **described, **(parameters or {})},
    }


def error_body(message: str) -> dict:
    return {"error": message}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value) if not isinstance(value, str) else repr(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
