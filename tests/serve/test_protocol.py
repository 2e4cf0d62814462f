import json

import numpy as np
import pytest

from trimnet.serve.protocol import OUTPUTS, InferRequest, InputSpec, OutputRequest, RequestError, model_metadata, outputs
from trimnet.serve.rest import encode_response, parse_infer

SHAPE = (1, 8, 8)


def body(data=None, shape=(1, 1, 8, 8), datatype="FP32", name="input", **extra) -> bytes:
    data = [0.5] * int(np.prod(shape)) if data is None else data
    return json.dumps({"inputs": [{"name": name, "shape": list(shape), "datatype": datatype, "data": data}],
                       **extra}).encode()


def parse(raw: bytes, **kw):
    return parse_infer(raw, InputSpec(SHAPE, 10), **kw)


def infer_response(name, req, probabilities, class_names) -> dict:
    data, header_length = encode_response(name, "1", req, outputs(req, probabilities, class_names))
    assert header_length is None  # JSON only
    return json.loads(data)


def test_a_valid_request_becomes_a_float32_batch():
    req = parse(body(list(range(128)), shape=(2, 1, 8, 8), id="abc"))
    assert req.x.shape == (2, 1, 8, 8) and req.x.dtype == np.float32
    assert req.x[1, 0, 0, 0] == 64 and req.id == "abc"
    assert [o.name for o in req.outputs] == list(OUTPUTS) and req.top_k == 1 and req.normalize is True


def test_nested_data_fp64_and_parameters_are_accepted():
    nested = np.arange(64, dtype=float).reshape(1, 1, 8, 8).tolist()
    req = parse(body(nested, datatype="FP64", parameters={"top_k": 3, "normalize": False},
                     outputs=[{"name": "labels"}, {"name": "probabilities"}]))
    assert req.x.shape == (1, 1, 8, 8) and req.x[0, 0, 7, 7] == 63
    assert req.top_k == 3 and req.normalize is False
    assert req.outputs == (OutputRequest("labels"), OutputRequest("probabilities"))


def test_server_defaults_apply_when_the_request_is_silent():
    req = parse(body(), normalize=False, top_k=4)
    assert req.normalize is False and req.top_k == 4


@pytest.mark.parametrize("raw, message", [
    (b"", "body is empty"),
    (b"{", "not valid JSON"),
    (b"\xff\xfe", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"inputs": 3}', "'inputs' must be a list"),
    (b'{"inputs": []}', "'inputs' must be a list"),
    (b'{"inputs": [1]}', "inputs[0] must be an object"),
    (b'{"inputs": [{"name": "input"}]}', "lacks 'shape', 'datatype', 'data'"),
    (body(name="x"), "unknown input 'x'; the model's input is named 'input'"),
    (body(datatype="BOOL"), "datatype 'BOOL' is not supported"),
    (body(datatype="FLOAT"), "'FLOAT' (not a v2 datatype)"),
    (body(datatype=["FP32"]), "is not supported"),
    (body([0.5] * 64, shape=(1, 64)), "shape [1, 64] does not match the model's [-1, 1, 8, 8]"),
    (body([], shape=(0, 1, 8, 8)), "batch at least 1"),
    (body([0.5] * 64, shape=(1, 1, 8, True)), "does not match"),
    (body([0.5] * 64, shape="1x1x8x8"), "does not match"),
    (body([0.5] * 63), "holds 63 values"),
    (body([0.5] * 65), "holds 65 values"),
    (body([0.5] * 64, shape=(10**12, 1, 8, 8)), "needs 64000000000000 values"),
    (body(np.zeros((1, 1, 8, 4)).tolist() * 2), "holds 64 values nested as [2, 1, 8, 4]"),
    (body("0" * 64), "'data' must be a list"),
    (body(["0.5"] * 64), "must hold only numbers"),
    (body([True] * 64), "found booleans"),
    (body([None] * 64), "must hold only numbers"),
    (body([[0.5], 0.5] * 32), "evenly nested"),
    (body([10**30] * 64), "must hold only numbers"),
    (b'{"inputs": [{"name": "input", "shape": [1,1,8,8], "datatype": "FP32", "data": [NaN' + b", 0" * 63 + b"]}]}",
     "NaN or infinite"),
    (body([float("inf")] + [0.0] * 63), "NaN or infinite"),
    (body([1e39] + [0.0] * 63), "beyond FP32 range"),
    (body(id=5), "'id' must be a string"),
    (body(parameters=[1]), "'parameters' must be an object"),
    (body(parameters={"normalize": "yes"}), "parameters.normalize must be true or false"),
    (body(parameters={"top_k": 0}), "top_k must be an integer from 1 to 10"),
    (body(parameters={"top_k": 11}), "top_k must be an integer from 1 to 10"),
    (body(parameters={"top_k": True}), "top_k must be an integer"),
    (body(outputs={"name": "labels"}), "'outputs' must be a list"),
    (body(outputs=[{"name": "logits"}]), "unknown output 'logits'"),
    (body(outputs=["labels"]), "outputs[0]: unknown output"),
])
def test_bad_requests_are_400_with_a_message_naming_the_problem(raw, message):
    with pytest.raises(RequestError) as err:
        parse(raw)
    assert err.value.status == 400
    assert message in str(err.value)


def test_response_holds_probabilities_and_top_k_best_first():
    p = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]], dtype=np.float32)
    req = InferRequest(x=np.zeros((2, 1)), id="r1", top_k=2)
    out = infer_response("m", req, p, ["a", "b", "c"])
    assert out["model_name"] == "m" and out["id"] == "r1"
    by = {o["name"]: o for o in out["outputs"]}
    assert by["probabilities"]["shape"] == [2, 3] and by["probabilities"]["datatype"] == "FP32"
    assert by["labels"] == {"name": "labels", "datatype": "INT64", "shape": [2, 2], "data": [1, 2, 0, 1]}
    assert by["classes"]["data"] == ["b", "c", "a", "b"] and by["classes"]["datatype"] == "BYTES"
    assert by["confidences"]["data"] == pytest.approx([0.6, 0.3, 0.5, 0.25])
    json.dumps(out, allow_nan=False)  # plain JSON types only


def test_ties_go_to_the_lower_index_like_argmax():
    p = np.full((1, 4), 0.25, dtype=np.float32)
    out = infer_response("m", InferRequest(x=np.zeros((1, 1)), top_k=4, outputs=(OutputRequest("labels"),)), p, list("abcd"))
    assert out["outputs"] == [{"name": "labels", "datatype": "INT64", "shape": [1, 4], "data": [0, 1, 2, 3]}]


def test_metadata_describes_input_and_outputs():
    meta = model_metadata("digits", InputSpec(SHAPE, 10), [str(i) for i in range(10)], "trimnet_torch")
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {n: t for n, (t, _) in OUTPUTS.items()}
    assert meta["outputs"][0]["shape"] == [-1, 10] and meta["parameters"]["class_names"][3] == "3"
