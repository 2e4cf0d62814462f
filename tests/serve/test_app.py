import asyncio
import json
import time

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

import trimnet as tn
from trimnet.serve import ServeConfig, ServedModel, create_app

INFER = "/v2/models/digits-cnn/infer"


@pytest.fixture(scope="module")
def client(served):
    with TestClient(create_app([served], ServeConfig(max_batch=16, max_delay_ms=1))) as c:
        yield c


def slow_model(name="slow", seconds=0.05) -> ServedModel:
    """Three classes, two features, ``seconds`` per batch: for filling queues."""
    def infer(x):
        time.sleep(seconds)
        return np.full((len(x), 3), 1 / 3, dtype=np.float32)

    return ServedModel(name=name, infer=infer, in_shape=(2,), class_names=["a", "b", "c"])


def small_body(n=1) -> dict:
    return {"inputs": [{"name": "input", "shape": [n, 2], "datatype": "FP32", "data": [0.5] * (2 * n)}]}


def test_health_metadata_and_readiness(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.head("/v2/health/ready").status_code == client.head("/v2/health/live").status_code == 200
    assert client.get("/v2/models/digits-cnn/ready").json() == {"name": "digits-cnn", "ready": True}
    meta = client.get("/v2/models/digits-cnn").json()
    assert meta["name"] == "digits-cnn" and meta["platform"] == "trimnet_torch"
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 1, 8, 8]}]
    assert [o["name"] for o in meta["outputs"]] == ["probabilities", "labels", "classes", "confidences"]
    assert meta["parameters"]["max_batch"] == 16 and meta["parameters"]["normalization"]["mean"]
    assert client.get("/v2").json()["name"] == "trimnet"


def test_results_equal_trimnet_predict(client, run_dir, raw_digits, h):
    """One request inside max_batch runs as one model call, like predict: bit-identical."""
    x = raw_digits[0][:12]
    expected = tn.predict(tn.load_artifact(run_dir), x)
    r = client.post(INFER, json=h.infer_body(x, parameters={"top_k": 3}))
    assert r.status_code == 200
    out = h.outputs(r)
    probs = np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(out["probabilities"]["shape"])
    np.testing.assert_array_equal(probs, expected.probabilities)
    assert out["labels"]["shape"] == [12, 3] and out["labels"]["data"][::3] == expected.labels
    assert out["classes"]["data"][::3] == expected.names


def test_requests_split_across_batches_agree_with_predict(client, run_dir, raw_digits, h):
    x = raw_digits[0][:40]  # max_batch 16: three model calls
    expected = tn.predict(tn.load_artifact(run_dir), x)
    out = h.outputs(client.post(INFER, json=h.infer_body(x)))
    probs = np.asarray(out["probabilities"]["data"], dtype=np.float32).reshape(40, 10)
    np.testing.assert_allclose(probs, expected.probabilities, rtol=0, atol=1e-6)
    assert out["labels"]["data"] == expected.labels


def test_normalization_is_applied_unless_asked_not_to(client, run_dir, raw_digits, h, served):
    x = raw_digits[0][:5]
    normalized = tn.load_artifact(run_dir).preprocess(torch.from_numpy(x)).numpy()
    raw = h.outputs(client.post(INFER, json=h.infer_body(x)))["probabilities"]["data"]
    pre = h.outputs(client.post(INFER, json=h.infer_body(normalized, parameters={"normalize": False})))
    assert pre["probabilities"]["data"] == raw
    with TestClient(create_app([served], ServeConfig(normalize=False))) as c:
        assert h.outputs(c.post(INFER, json=h.infer_body(normalized)))["probabilities"]["data"] == raw
        assert c.get("/v2/models/digits-cnn").json()["parameters"]["normalize"] is False


def test_requested_outputs_and_id_come_back(client, raw_digits, h):
    r = client.post(INFER, json=h.infer_body(raw_digits[0][:2], id="req-7", outputs=[{"name": "classes"}],
                                             parameters={"top_k": 2}))
    body = r.json()
    assert body["id"] == "req-7" and body["model_name"] == "digits-cnn"
    assert [o["name"] for o in body["outputs"]] == ["classes"] and body["outputs"][0]["shape"] == [2, 2]


@pytest.mark.parametrize("method, path, body, status, message", [
    ("post", INFER, b"{not json", 400, "not valid JSON"),
    ("post", INFER, json.dumps({"inputs": [{"name": "input", "shape": [1, 64], "datatype": "FP32",
                                            "data": [0] * 64}]}).encode(), 400, "does not match the model's"),
    ("post", INFER, json.dumps({"inputs": [{"name": "image", "shape": [1, 1, 8, 8], "datatype": "FP32",
                                            "data": [0] * 64}]}).encode(), 400, "unknown input 'image'"),
    ("post", INFER, json.dumps({"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "BYTES",
                                            "data": ["a"] * 64}]}).encode(), 400, "datatype 'BYTES'"),
    ("post", INFER, b'{"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "FP32", "data": [Infinity'
     + b", 1" * 63 + b"]}]}", 400, "NaN or infinite"),
    ("post", "/v2/models/nope/infer", b"{}", 404, "no model named 'nope'; this server has: digits-cnn"),
    ("get", "/v2/models/nope", None, 404, "no model named 'nope'"),
    ("get", "/v2/models/nope/ready", None, 404, "no model named 'nope'"),
    ("get", "/v2/nothing/here", None, 404, "Not Found"),
    ("get", INFER, None, 405, "Method Not Allowed"),
    ("delete", "/v2/models/digits-cnn", None, 405, "Method Not Allowed"),
])
def test_errors_are_json_with_the_status_and_a_message(client, method, path, body, status, message):
    r = client.request(method.upper(), path, content=body)
    assert r.status_code == status
    assert message in r.json()["error"]


def test_body_limit_413_by_header_and_by_stream(served, raw_digits, h):
    config = ServeConfig(max_body_bytes=2000, max_queue=64, max_batch=8)
    app = create_app([served], config)
    with TestClient(app) as c:
        r = c.post(INFER, json=h.infer_body(raw_digits[0][:20]))
        assert r.status_code == 413 and "limit is 2000" in r.json()["error"]
        assert c.post(INFER, json=h.infer_body(raw_digits[0][:2])).status_code == 200

    async def chunked():
        async def stream():
            for _ in range(10):
                yield b" " * 500

        transport = httpx.ASGITransport(app=create_app([served], config))  # the first one has shut down
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await ac.post(INFER, content=stream())

    r = asyncio.run(chunked())
    assert r.status_code == 413 and "passes the limit of 2000 bytes" in r.json()["error"]


def test_more_samples_than_the_queue_holds_is_413(served, raw_digits, h):
    with TestClient(create_app([served], ServeConfig(max_queue=16, max_batch=8))) as c:
        r = c.post(INFER, json=h.infer_body(raw_digits[0][:17]))
        assert r.status_code == 413 and "queues at most 16" in r.json()["error"]
        assert c.post(INFER, json=h.infer_body(raw_digits[0][:16])).status_code == 200  # split in two batches


def test_token_is_required_except_for_health_probes(served, raw_digits, h):
    with TestClient(create_app([served], ServeConfig(token="s3cret"))) as c:
        assert c.get("/v2/health/ready").status_code == 200 and c.get("/v2/health/live").status_code == 200
        for path in ("/v2/models/digits-cnn", "/metrics", "/openapi.json"):
            r = c.get(path)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert "bearer token" in r.json()["error"]
        assert c.post(INFER, json=h.infer_body(raw_digits[0][:1])).status_code == 401
        wrong = {"Authorization": "Bearer guess"}
        assert c.post(INFER, json=h.infer_body(raw_digits[0][:1]), headers=wrong).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert c.get("/metrics", headers={"Authorization": "bearer s3cret"}).status_code == 200  # scheme: any case
        good = {"Authorization": "Bearer s3cret"}
        assert c.post(INFER, json=h.infer_body(raw_digits[0][:1]), headers=good).status_code == 200
        assert c.get("/metrics", headers=good).status_code == 200


async def burst(app, n: int, body: dict, path="/v2/models/slow/infer"):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as ac:
        return await asyncio.gather(*(ac.post(path, json=body) for _ in range(n)))


def test_overload_answers_503_with_retry_after_then_recovers():
    app = create_app([slow_model()], ServeConfig(max_batch=2, max_queue=4, max_delay_ms=0, retry_after_s=2))
    responses = asyncio.run(burst(app, 30, small_body()))
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, 503} and codes.count(200) >= 4
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["retry-after"] == "2" and "at capacity" in refused.json()["error"]
    assert app.state.batchers["slow"].queued == 0
    # recovered: once the queue drains, everything succeeds again
    again = asyncio.run(burst(app, 4, small_body()))
    assert [r.status_code for r in again] == [200] * 4
    metrics = asyncio.run(_get(app, "/metrics")).text
    assert 'trimnet_requests_total{method="POST",route="/v2/models/{name}/infer",status="503"}' in metrics


def test_too_many_requests_in_flight_is_503_but_health_probes_still_answer():
    app = create_app([slow_model(seconds=0.1)], ServeConfig(max_inflight=3, max_queue=64, max_delay_ms=50))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as ac:
            infers = [asyncio.ensure_future(ac.post("/v2/models/slow/infer", json=small_body())) for _ in range(10)]
            await asyncio.sleep(0.02)
            probe = await ac.get("/v2/health/ready")
            return await asyncio.gather(*infers), probe

    responses, probe = asyncio.run(main())
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 3 and codes.count(503) == 7
    assert "handling 3 requests" in next(r for r in responses if r.status_code == 503).json()["error"]
    assert probe.status_code == 200


async def _get(app, path):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
        return await ac.get(path)


def test_metrics_show_requests_latency_queue_and_batch_sizes(served, raw_digits, h):
    app = create_app([served], ServeConfig(max_batch=8, max_delay_ms=20))
    other = create_app([served], ServeConfig())  # a registry of its own: sees none of the first app's traffic

    async def traffic():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            await asyncio.gather(*(ac.post(INFER, json=h.infer_body(raw_digits[0][i:i + 1])) for i in range(8)))
            await ac.post(INFER, content=b"[")
            return (await ac.get("/metrics")).text

    text = asyncio.run(traffic())
    assert 'trimnet_requests_total{method="POST",route="/v2/models/{name}/infer",status="200"} 8.0' in text
    assert 'trimnet_requests_total{method="POST",route="/v2/models/{name}/infer",status="400"} 1.0' in text
    assert 'trimnet_request_seconds_count{route="/v2/models/{name}/infer"} 9.0' in text
    assert 'trimnet_batch_size_bucket{le="8.0",model="digits-cnn"} 1.0' in text  # eight requests, one batch
    assert 'trimnet_batch_size_sum{model="digits-cnn"} 8.0' in text
    assert 'trimnet_queue_seconds_count{model="digits-cnn"} 8.0' in text
    assert 'trimnet_inference_seconds_count{model="digits-cnn"} 1.0' in text
    assert 'trimnet_queue_samples{model="digits-cnn"} 0.0' in text
    assert 'status="200"} 8.0' not in asyncio.run(_get(other, "/metrics")).text


def test_unknown_paths_do_not_grow_the_metric_series(client):
    for i in range(5):
        client.get(f"/random/{i}")
        client.get(f"/v2/models/m{i}")
    text = client.get("/metrics").text
    assert "/random/" not in text and "m3" not in text
    assert 'route="other",status="404"' in text


def test_openapi_documents_the_protocol(client):
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
                 "/v2/models/{name}/infer", "/metrics"):
        assert path in paths
    infer = paths["/v2/models/{name}/infer"]["post"]
    schema = infer["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["inputs"] and "datatype" in schema["properties"]["inputs"]["items"]["properties"]
    assert {"200", "400", "404", "413", "503"} <= set(infer["responses"])


def test_several_models_from_one_app(served, raw_digits, h):
    from dataclasses import replace

    twin = replace(served, name="twin")
    with TestClient(create_app([served, twin])) as c:
        a = c.post(INFER, json=h.infer_body(raw_digits[0][:3])).json()
        b = c.post("/v2/models/twin/infer", json=h.infer_body(raw_digits[0][:3])).json()
        assert b["model_name"] == "twin" and a["outputs"] == b["outputs"]
        assert "digits-cnn, twin" in c.get("/v2/models/x").json()["error"]
    with pytest.raises(tn.ConfigError, match="two models are named 'digits-cnn'"):
        create_app([served, served])


def test_shutdown_finishes_queued_requests():
    app = create_app([slow_model(seconds=0.05)], ServeConfig(max_batch=2, max_delay_ms=200, max_queue=64))

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as ac:
            async with app.router.lifespan_context(app):
                pending = [asyncio.ensure_future(ac.post("/v2/models/slow/infer", json=small_body()))
                           for _ in range(6)]
                await asyncio.sleep(0.02)  # queued, waiting out the 200 ms delay
            # lifespan shutdown has drained the queue: every request got its answer
            answers = await asyncio.gather(*pending)
            late = await ac.post("/v2/models/slow/infer", json=small_body())
        return answers, late

    answers, late = asyncio.run(main())
    assert [r.status_code for r in answers] == [200] * 6
    assert late.status_code == 503 and "shutting down" in late.json()["error"]


@pytest.mark.parametrize("limit", ["max_inflight", "max_queue", "queue_room"])
def test_a_capacity_refusal_is_answered_after_the_refusal_delay(limit):
    """Clients that retry at once cost a refusal per pause, not per round trip; a drain's 503 is not held.

    queue_room: 3-sample requests against room for 4, so every refusal comes from the batcher (QueueFull)
    after admission let the request in, not from admission itself."""
    limits = {"max_inflight": {"max_inflight": 1, "max_queue": 64}, "max_queue": {"max_batch": 1, "max_queue": 1},
              "queue_room": {"max_batch": 4, "max_queue": 4}}[limit]
    samples = 3 if limit == "queue_room" else 1

    async def refusals(delay_ms: float, draining: bool = False) -> list[tuple[float, str]]:
        app = create_app([slow_model(seconds=0.3)], ServeConfig(max_delay_ms=0, refusal_delay_ms=delay_ms, **limits))
        app.state.service.draining = draining
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=30) as ac:
            async def timed():
                t0 = time.perf_counter()
                r = await ac.post("/v2/models/slow/infer", json=small_body(samples))
                return r, time.perf_counter() - t0

            answers = await asyncio.gather(*(timed() for _ in range(12)))
        refused = [(waited, r.json()["error"]) for r, waited in answers if r.status_code == 503]
        assert refused and all(r.headers["retry-after"] == "1" for r, _ in answers if r.status_code == 503)
        return refused

    held = asyncio.run(refusals(250))
    assert min(w for w, _ in held) >= 0.24, held
    assert all(("handling 1 requests" if limit == "max_inflight" else "at capacity") in why for _, why in held)
    assert min(w for w, _ in asyncio.run(refusals(0))) < 0.2
    if limit != "max_inflight":
        drained = asyncio.run(refusals(250, draining=True))
        assert min(w for w, _ in drained) < 0.2 and all("shutting down" in why for _, why in drained)


def test_refusal_delay_is_checked():
    for bad in (-1, 10_001, "x", True):
        with pytest.raises(tn.ConfigError, match="refusal_delay_ms"):
            ServeConfig(refusal_delay_ms=bad)
