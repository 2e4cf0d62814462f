"""The infer fast lane: an infer path skips FastAPI's router and answers exactly as the router's route would."""

import numpy as np
import pytest
from fastapi.testclient import TestClient

from trimnet.serve import ServeConfig, create_app
from trimnet.serve.routes_infer import INFER_PATHS, infer_route

from .conftest import infer_body, outputs


@pytest.mark.parametrize("method, path, expected", [
    ("POST", "/v2/models/m/infer", (INFER_PATHS[0], {"name": "m"})),
    ("POST", "/v2/models/m.v2_x-1/versions/1/infer", (INFER_PATHS[1], {"name": "m.v2_x-1", "version": "1"})),
    ("POST", "/v2/models/m/versions/7/infer", (INFER_PATHS[1], {"name": "m", "version": "7"})),
    ("GET", "/v2/models/m/infer", None),  # the router answers 405
    ("POST", "/v2/models//infer", None),
    ("POST", "/v2/models/a/b/infer", None),
    ("POST", "/v2/models/m/versions//infer", None),
    ("POST", "/v2/models/m/version/1/infer", None),
    ("POST", "/v2/models/m/infer/", None),
    ("POST", "/v2/models/infer", None),
    ("POST", "/v2/models/m/ready", None),
])
def test_infer_route_matches_what_the_router_would(method, path, expected):
    assert infer_route({"method": method, "path": path, "root_path": ""}) == expected


def test_fast_lane_and_router_answer_alike(served, raw_digits):
    x = raw_digits[0][:3]
    # one app each: a batcher serves one event loop, and each TestClient runs its own
    config = ServeConfig(max_batch=4, max_delay_ms=1)
    with TestClient(create_app([served], config)) as fast, \
            TestClient(create_app([served], config), root_path="/api") as routed:
        assert infer_route({"method": "POST", "path": "/v2/models/digits-cnn/infer", "root_path": "/api"}) is None
        for path in ("/v2/models/digits-cnn/infer", "/v2/models/digits-cnn/versions/1/infer"):
            a, b = fast.post(path, json=infer_body(x)), routed.post(path, json=infer_body(x))
            assert a.status_code == b.status_code == 200
            np.testing.assert_array_equal(outputs(a)["probabilities"]["data"], outputs(b)["probabilities"]["data"])
        for c in (fast, routed):
            assert c.post("/v2/models/nope/infer", json=infer_body(x)).status_code == 404
            assert c.post("/v2/models/digits-cnn/versions/2/infer", json=infer_body(x)).status_code == 404
            assert c.post("/v2/models/a/b/infer", json=infer_body(x)).status_code == 404
            assert c.get("/v2/models/digits-cnn/infer").status_code == 405
        metrics = [c.get("/metrics").text for c in (fast, routed)]
    # the fast lane counts its requests under the route's template, as the router's route does
    for text in metrics:
        assert 'route="/v2/models/{name}/versions/{version}/infer",status="200"} 1.0' in text
        assert 'route="/v2/models/{name}/infer",status="200"} 1.0' in text


def test_fast_lane_still_passes_the_gate(served, raw_digits):
    app = create_app([served], ServeConfig(token="s3cret"))
    with TestClient(app) as c:
        body = infer_body(raw_digits[0][:1])
        assert c.post("/v2/models/digits-cnn/infer", json=body).status_code == 401
        ok = c.post("/v2/models/digits-cnn/infer", json=body, headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
