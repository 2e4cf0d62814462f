"""A regression model served: its predicted values as one FP32 output, described as such, over REST and gRPC
(Triton's own clients against ``trimnet serve`` on 127.0.0.1)."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

import trimnet as tn
from trimnet.serve import ServeConfig, ServedModel, create_app

http = pytest.importorskip("tritonclient.http")
grpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "house-mlp"


@pytest.fixture(scope="module", params=["http", "grpc"])
def client(request, live_regression_server):
    srv = live_regression_server
    module = http if request.param == "http" else grpc
    c = module.InferenceServerClient(srv.url.removeprefix("http://") if module is http else srv.grpc)
    yield module, c
    c.close()


@pytest.fixture(scope="module")
def expected(regression_run_dir):
    """Raw inputs and what trimnet.predict (the eager model, normalization applied) gives for them."""
    x = np.random.default_rng(3).normal(1.5, 2.0, size=(7, 8)).astype(np.float32)
    pred = tn.predict(tn.load_artifact(regression_run_dir), x)
    assert pred.values.shape == (7, 2)
    return x, pred.values


def as_json(module) -> dict:
    return {"as_json": True} if module is grpc else {}


def test_metadata_and_config_describe_the_predicted_values(client):
    module, c = client
    meta = c.get_model_metadata(MODEL, **as_json(module))
    assert [int(d) for d in meta["inputs"][0]["shape"]] == [-1, 8]
    assert [(o["name"], o["datatype"], [int(d) for d in o["shape"]]) for o in meta["outputs"]] == [
        ("values", "FP32", [-1, 2])]
    config = c.get_model_config(MODEL, **as_json(module))
    config = config.get("config", config)
    assert [(o["name"], o["data_type"], [int(d) for d in o["dims"]]) for o in config["output"]] == [
        ("values", "TYPE_FP32", [2])]  # dims leave the batch out, as max_batch_size > 0
    assert int(config["max_batch_size"]) == 16 and [int(d) for d in config["input"][0]["dims"]] == [8]
    assert not any(o.get("label_filename") for o in config["output"])  # no classes to label


def test_default_infer_equals_trimnet_predict(client, expected):
    """tritonclient's defaults (binary tensors / raw contents): the values bit for bit, shape [batch, outputs]."""
    module, c = client
    x, values = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    r = c.infer(MODEL, [inp])
    out = r.as_numpy("values")
    assert out.dtype == np.float32 and out.shape == (7, 2)
    np.testing.assert_array_equal(out, values)  # one model call: exact
    assert r.as_numpy("probabilities") is None  # a regression model has no class scores


def test_json_values_and_a_requested_output(client, expected):
    module, c = client
    x, values = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    if module is http:
        inp.set_data_from_numpy(x, binary_data=False)  # JSON numbers both ways
        outs = [module.InferRequestedOutput("values", binary_data=False)]
    else:
        inp.set_data_from_numpy(x)
        outs = [module.InferRequestedOutput("values")]
    r = c.infer(MODEL, [inp], outputs=outs, request_id="r-1")
    assert r.get_response(**as_json(module))["id"] == "r-1"
    np.testing.assert_array_equal(r.as_numpy("values").astype(np.float32).reshape(7, 2), values)


def test_classification_on_a_regression_model_is_a_400_naming_why(client, expected):
    module, c = client
    x, _ = expected
    inp = module.InferInput("input", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    with pytest.raises(InferenceServerException, match="class_count .*needs a classification model; this is a "
                                                       "regression model") as err:
        c.infer(MODEL, [inp], outputs=[module.InferRequestedOutput("values", class_count=2)])
    assert str(err.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    with pytest.raises(InferenceServerException, match="unknown output 'probabilities'; the model's outputs are "
                                                       "values") as err:
        c.infer(MODEL, [inp], outputs=[module.InferRequestedOutput("probabilities")])
    assert str(err.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")


def test_rest_json_body_and_top_k_is_ignored(live_regression_server, expected, h):
    x, values = expected
    status, body, _ = h.get(live_regression_server.url + f"/v2/models/{MODEL}/infer",
                            h.infer_body(x, parameters={"top_k": 3}))  # top_k applies to classes: ignored
    assert status == 200, body
    assert body["outputs"] == [{"name": "values", "datatype": "FP32", "shape": [7, 2],
                                "data": values.ravel().tolist()}]
    status, meta, _ = h.get(live_regression_server.url + f"/v2/models/{MODEL}")
    assert meta["parameters"]["task"] == "regression" and "class_names" not in meta["parameters"]


def nan_model() -> ServedModel:
    """A regression model that diverges: every value NaN."""
    return ServedModel(name="nan", infer=lambda x: np.full((len(x), 1), np.nan, np.float32), in_shape=(2,),
                       class_names=[], task="regression", num_values=1)


def test_non_finite_values_follow_the_classification_rule(h):
    """JSON cannot carry NaN: 422 saying to ask for binary; binary outputs carry it as it is."""
    body = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 0.5]}]}
    with TestClient(create_app([nan_model()], ServeConfig(max_batch=4))) as c:
        r = c.post("/v2/models/nan/infer", json=body)
        assert r.status_code == 422 and "binary_data" in r.json()["error"]
        r = c.post("/v2/models/nan/infer", json={**body, "parameters": {"binary_data_output": True}})
        assert r.status_code == 200
        header = int(r.headers["inference-header-content-length"])
        assert np.isnan(np.frombuffer(r.content[header:], "<f4")).all()


def test_a_served_model_of_an_unknown_task_is_refused():
    from trimnet.errors import ConfigError

    bad = ServedModel(name="rank", infer=lambda x: x, in_shape=(2,), class_names=[], task="ranking")
    with pytest.raises(ConfigError, match="ranking model; trimnet serve answers classification and regression"):
        create_app([bad])
    with pytest.raises(ConfigError, match="at least one value per sample"):
        create_app([ServedModel(name="r", infer=lambda x: x, in_shape=(2,), class_names=[], task="regression")])


def test_predict_through_the_server_equals_local_predict(live_regression_server, regression_run_dir, expected,
                                                         tmp_path, capsys):
    """`trimnet predict --url` on a regression model: the same values as without --url, and a table of them."""
    import json

    from trimnet.cli.main import main

    np.savez(tmp_path / "x.npz", x=expected[0])

    def cli(*argv):
        code = main([str(a) for a in argv])
        return code, capsys.readouterr().out

    code, local = cli("predict", regression_run_dir, "--input", tmp_path / "x.npz", "--json")
    assert code == 0
    code, remote = cli("predict", regression_run_dir, "--input", tmp_path / "x.npz", "--json",
                       "--url", live_regression_server.url)
    assert code == 0 and json.loads(remote) == json.loads(local)
    assert json.loads(local)["predictions"][0]["value"] == expected[1][0].tolist()
    code, table = cli("predict", regression_run_dir, "--input", tmp_path / "x.npz")
    assert code == 0 and table.split()[:2] == ["input", "value"] and len(table.splitlines()) == 2 + 7
