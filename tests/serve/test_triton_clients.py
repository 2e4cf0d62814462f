"""Triton's own clients (tritonclient http and grpc, with their defaults) against ``trimnet serve`` on 127.0.0.1."""

import numpy as np
import pytest

import trimnet as tn

http = pytest.importorskip("tritonclient.http")
grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "digits-cnn"


@pytest.fixture(scope="module", params=["http", "grpc"])
def client(request, live_server):
    module = http if request.param == "http" else grpc
    url = live_server.url.removeprefix("http://") if request.param == "http" else live_server.grpc
    c = module.InferenceServerClient(url)
    yield module, c
    c.close()


@pytest.fixture(scope="module")
def expected(run_dir, raw_digits):
    x = raw_digits[0][:5]
    return x, tn.predict(tn.load_artifact(run_dir), x)


def test_health_metadata_and_config_as_triton_clients_read_them(client):
    module, c = client
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready(MODEL) and c.is_model_ready(MODEL, "1")
    as_json = {"as_json": True} if module is grpc else {}
    meta = c.get_model_metadata(MODEL, "1", **as_json)
    assert meta["versions"] == ["1"]
    assert meta["inputs"][0]["name"] == "input" and meta["inputs"][0]["datatype"] == "FP32"
    assert [int(d) for d in meta["inputs"][0]["shape"]] == [-1, 1, 8, 8]
    config = c.get_model_config(MODEL, **as_json)
    config = config.get("config", config)
    assert int(config["max_batch_size"]) == 16  # dims leave the batch out, as perf_analyzer expects
    assert [int(d) for d in config["input"][0]["dims"]] == [1, 8, 8]
    index = c.get_model_repository_index(**as_json)
    index = index["models"] if isinstance(index, dict) else index
    assert [(m["name"], m["state"]) for m in index] == [(MODEL, "READY")]
    with pytest.raises(InferenceServerException, match="has no version '7'"):
        c.get_model_metadata(MODEL, "7")
    with pytest.raises(InferenceServerException, match="no model named 'nope'"):
        c.get_model_metadata("nope")


def test_default_infer_equals_trimnet_predict(client, expected):
    """tritonclient's defaults: binary input tensors, binary outputs (HTTP) / raw contents (gRPC)."""
    module, c = client
    x, pred = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    for version in ("", "1"):
        r = c.infer(MODEL, [inp], model_version=version)
        np.testing.assert_array_equal(r.as_numpy("probabilities"), pred.probabilities)  # one model call: exact
        assert r.as_numpy("labels").ravel().tolist() == pred.labels
        assert [b.decode() for b in r.as_numpy("classes").ravel()] == pred.names
        assert r.as_numpy("confidences").shape == (5, 1)


def test_requested_outputs_json_data_and_classification(client, expected):
    module, c = client
    x, pred = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    if module is http:
        inp.set_data_from_numpy(x, binary_data=False)  # JSON numbers both ways
        outs = [module.InferRequestedOutput("labels", binary_data=False),
                module.InferRequestedOutput("probabilities", binary_data=False, class_count=3)]
    else:
        inp.set_data_from_numpy(x)
        outs = [module.InferRequestedOutput("labels"), module.InferRequestedOutput("probabilities", class_count=3)]
    r = c.infer(MODEL, [inp], outputs=outs, request_id="req-9")
    assert r.get_response(**({"as_json": True} if module is grpc else {}))["id"] == "req-9"
    assert r.as_numpy("labels").ravel().tolist() == pred.labels
    top = r.as_numpy("probabilities")  # classification: "score:index:label", best first
    assert top.shape == (5, 3)
    for row, probs in zip(top, pred.probabilities):
        fields = [(b.decode() if isinstance(b, bytes) else b).split(":") for b in row]  # JSON: str
        order = np.argsort(-probs, kind="stable")[:3]
        assert [int(f[1]) for f in fields] == order.tolist() and [f[2] for f in fields] == [str(i) for i in order]
        np.testing.assert_allclose([float(f[0]) for f in fields], probs[order], rtol=1e-5)


def test_statistics_count_what_was_served(client, expected):
    module, c = client
    x, _ = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    as_json = {"as_json": True} if module is grpc else {}
    before = c.get_inference_statistics(MODEL, **as_json)["model_stats"][0]
    c.infer(MODEL, [inp])
    after = c.get_inference_statistics(MODEL, **as_json)["model_stats"][0]
    assert int(after["inference_count"]) - int(before.get("inference_count", 0)) == 5
    success = after["inference_stats"]["success"]
    assert int(success["count"]) - int(before.get("inference_stats", {}).get("success", {}).get("count", 0)) == 1
    assert int(success["ns"]) > 0 and after["batch_stats"]


def test_bad_requests_are_client_errors_never_500(client):
    module, c = client
    wrong = module.InferInput("input", [1, 64], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 64), np.float32))
    with pytest.raises(InferenceServerException, match="does not match the model's") as err:
        c.infer(MODEL, [wrong])
    assert str(err.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    unknown = module.InferInput("input", [1, 1, 8, 8], "FP32")
    unknown.set_data_from_numpy(np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(InferenceServerException, match="unknown output 'logits'"):
        c.infer(MODEL, [unknown], outputs=[module.InferRequestedOutput("logits")])
    text = module.InferInput("input", [1], "BYTES")
    text.set_data_from_numpy(np.array([b"hello"], dtype=object))
    with pytest.raises(InferenceServerException, match="needs a model with a tokenizer"):
        c.infer(MODEL, [text])


def test_non_finite_outputs_travel_binary(client):
    """Inputs this large overflow the model to NaN: binary outputs carry NaN; gRPC's raw contents too."""
    module, c = client
    inp = module.InferInput("input", [1, 1, 8, 8], "FP32")
    inp.set_data_from_numpy(np.full((1, 1, 8, 8), -3e38, np.float32))
    raw = {"normalize": False}  # as they are: the training normalization would shrink them
    r = c.infer(MODEL, [inp], parameters=raw)
    assert np.isnan(r.as_numpy("probabilities")).all()
    if module is http:  # JSON cannot carry NaN: a clear 422 that says how to get them
        with pytest.raises(InferenceServerException, match="binary_data") as err:
            c.infer(MODEL, [inp], parameters=raw, outputs=[module.InferRequestedOutput("probabilities",
                                                                                        binary_data=False)])
        assert err.value.status() == "422"


def test_grpc_typed_contents_and_unimplemented_rpcs_answer_clearly(live_server):
    """Raw and typed contents both, the wrong contents field, FP16 (no typed field), an RPC not implemented:
    INVALID_ARGUMENT or UNIMPLEMENTED with a message naming the fix; an unknown model is not ready."""
    import grpc as grpclib
    from tritonclient.grpc import service_pb2 as pb, service_pb2_grpc as pb_grpc

    def request(datatype="FP32", raw=None, **contents):
        tensor = pb.ModelInferRequest().InferInputTensor(name="input", datatype=datatype, shape=[1, 1, 8, 8])
        for field, values in contents.items():
            getattr(tensor.contents, field).extend(values)
        return pb.ModelInferRequest(model_name=MODEL, inputs=[tensor], raw_input_contents=[raw] if raw else [])

    zeros = np.zeros(64, np.float32)
    with grpclib.insecure_channel(live_server.grpc) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        ok = stub.ModelInfer(request(fp32_contents=zeros.tolist()))
        assert np.frombuffer(ok.raw_output_contents[0], np.float32).shape == (10,)
        for req, message in [(request(raw=zeros.tobytes(), fp32_contents=[1.0]), "send them in one of the two"),
                             (request(int_contents=[0] * 64), "go in contents.fp32_contents"),
                             (request(fp32_contents=[0.0] * 63), "contents.fp32_contents holds 63 values"),
                             (request("FP16", fp32_contents=[0.0] * 64), "FP16 has no typed contents field"),
                             (request(), "no values")]:
            with pytest.raises(grpclib.RpcError) as err:
                stub.ModelInfer(req)
            assert err.value.code() == grpclib.StatusCode.INVALID_ARGUMENT and message in err.value.details()
        with pytest.raises(grpclib.RpcError) as err:
            stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=MODEL))
        assert err.value.code() == grpclib.StatusCode.UNIMPLEMENTED
        assert "does not implement RepositoryModelLoad" in err.value.details()
    c = grpc.InferenceServerClient(live_server.grpc)
    assert not c.is_model_ready("nope") and not c.is_model_ready(MODEL, "2") and c.is_model_ready(MODEL)
    c.close()
