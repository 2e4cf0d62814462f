"""The binary tensor data extension, BYTES inputs, admission before parsing and draining, in process."""

import asyncio
import json
import struct
import time

import httpx
import numpy as np
from fastapi.testclient import TestClient

from trimnet.serve import ServeConfig, ServedModel, create_app

INFER = "/v2/models/digits-cnn/infer"


def binary_body(x: np.ndarray, outputs=None, **params) -> tuple[bytes, dict]:
    raw = np.ascontiguousarray(x, dtype="<f4").tobytes()
    header = {"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                          "parameters": {"binary_data_size": len(raw)}}], "parameters": params}
    if outputs is not None:
        header["outputs"] = outputs
    head = json.dumps(header).encode()
    return head + raw, {"Inference-Header-Content-Length": str(len(head)), "Content-Type": "application/octet-stream"}


def test_binary_inputs_and_outputs_equal_json(served, raw_digits, h):
    x = raw_digits[0][:4]
    with TestClient(create_app([served], ServeConfig(max_batch=16, max_delay_ms=1))) as c:
        as_json = h.outputs(c.post(INFER, json=h.infer_body(x)))
        body, headers = binary_body(x, binary_data_output=True)
        r = c.post("/v2/models/digits-cnn/versions/1/infer", content=body, headers=headers)
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
        n = int(r.headers["inference-header-content-length"])
        head, blob = json.loads(r.content[:n]), r.content[n:]
        assert head["model_version"] == "1"
        at, got = 0, {}
        for out in head["outputs"]:
            size = out["parameters"]["binary_data_size"]
            got[out["name"]] = blob[at:at + size]
            at += size
        assert at == len(blob)
        probs = np.frombuffer(got["probabilities"], "<f4").reshape(out_shape(head, "probabilities"))
        assert probs.ravel().tolist() == as_json["probabilities"]["data"]
        assert np.frombuffer(got["labels"], "<i8").tolist() == as_json["labels"]["data"]
        names = []
        while got["classes"]:
            (k,) = struct.unpack_from("<I", got["classes"])
            names.append(got["classes"][4:4 + k].decode())
            got["classes"] = got["classes"][4 + k:]
        assert names == as_json["classes"]["data"]
        # a binary size that disagrees with the bytes sent is a 400, never a 500
        r = c.post(INFER, content=body[:-4], headers=headers)
        assert r.status_code == 400 and "binary_data_size" in r.json()["error"]
        r = c.post(INFER, content=body, headers={"Inference-Header-Content-Length": "x"})
        assert r.status_code == 400 and "Inference-Header-Content-Length" in r.json()["error"]
        r = c.post("/v2/models/digits-cnn/versions/2/infer", json=h.infer_body(x))
        assert r.status_code == 404 and "has no version '2'" in r.json()["error"]


def out_shape(head, name):
    return next(o["shape"] for o in head["outputs"] if o["name"] == name)


def test_malformed_output_fields_are_400(served, raw_digits, h):
    x = raw_digits[0][:1]
    with TestClient(create_app([served])) as c:
        for outputs, message in [([{"name": []}], "unknown output []"),
                                 ([{"name": "labels", "parameters": {"class_count": 2}}], "applies to the"),
                                 ([{"name": "probabilities", "parameters": {"classification": 11}}], "from 0 to 10"),
                                 ([{"name": "labels", "parameters": {"binary_data": "yes"}}], "true or false")]:
            r = c.post(INFER, json=h.infer_body(x, outputs=outputs))
            assert r.status_code == 400 and message in r.json()["error"], r.text


def test_malformed_requests_name_what_is_wrong(served, raw_digits, h):
    """Header values, encodings, integer ranges, repeated outputs: a 4xx that says what to change, never a 500."""
    x = raw_digits[0][:1]
    body, headers = binary_body(x)
    ints = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "INT8", "data": [1000] + [0] * 63}]}
    fractions = {"inputs": [{"name": "input", "shape": [1, 1, 8, 8], "datatype": "INT32", "data": [0.5] * 64}]}
    with TestClient(create_app([served])) as c:
        for extra, content, status, message in [
            ({"Inference-Header-Content-Length": "\u00b2"}, body, 400, "must be a number of bytes"),  # '²'.isdigit()
            ({"Content-Encoding": "gzip"}, body, 415, "send the request body uncompressed"),
            ({"Inference-Header-Content-Length": None}, body, 400, "Inference-Header-Content-Length header"),
        ]:
            sent = {k: v for k, v in {**headers, **extra}.items() if v is not None}
            r = c.post(INFER, content=content, headers={k: v.encode("latin-1") for k, v in sent.items()})
            assert r.status_code == status and message in r.json()["error"], r.text
        for request, message in [(ints, "outside INT8's range [-128, 127]"), (fractions, "holds fractions"),
                                 (h.infer_body(x, outputs=[{"name": "classes"}, {"name": "classes"}]),
                                  "'classes' is requested twice")]:
            r = c.post(INFER, json=request)
            assert r.status_code == 400 and message in r.json()["error"], r.text
        in_range = {"inputs": [{**ints["inputs"][0], "data": [127, -128] + [0] * 62}]}
        assert c.post(INFER, json=in_range).status_code == 200


def text_model() -> ServedModel:
    """Two classes from two features of each text (its length and its count of 'a'), as a tokenizer would feed."""
    def encode_text(texts):
        return np.array([[len(t), t.count("a")] for t in texts], dtype=np.float32)

    def infer(x):
        return np.stack([x[:, 0] / (x[:, 0] + x[:, 1] + 1), (x[:, 1] + 1) / (x[:, 0] + x[:, 1] + 1)], axis=1)

    return ServedModel(name="spam", infer=infer, in_shape=(2,), class_names=["ham", "spam"], encode_text=encode_text)


def test_bytes_inputs_go_through_encode_text():
    texts = ["aaaa", "hello there", "é"]
    with TestClient(create_app([text_model()])) as c:
        meta = c.get("/v2/models/spam").json()
        assert meta["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1, 1]}]
        assert c.get("/v2/models/spam/config").json()["input"][0]["data_type"] == "TYPE_STRING"
        body = {"inputs": [{"name": "input", "shape": [3, 1], "datatype": "BYTES", "data": texts}],
                "outputs": [{"name": "classes"}]}
        r = c.post("/v2/models/spam/infer", json=body)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["spam", "ham", "ham"]
        raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
        head = json.dumps({"inputs": [{"name": "input", "shape": [3], "datatype": "BYTES",
                                       "parameters": {"binary_data_size": len(raw)}}],
                           "outputs": [{"name": "classes"}]}).encode()
        r = c.post("/v2/models/spam/infer", content=head + raw,
                   headers={"Inference-Header-Content-Length": str(len(head))})
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == ["spam", "ham", "ham"]
        bad = raw[:-1] + b"\xff"
        head = head.replace(str(len(raw)).encode(), str(len(bad)).encode())
        r = c.post("/v2/models/spam/infer", content=head + bad,
                   headers={"Inference-Header-Content-Length": str(len(head))})
        assert r.status_code == 400 and "not valid UTF-8" in r.json()["error"]


def slow_model(seconds=0.1) -> ServedModel:
    def infer(x):
        time.sleep(seconds)
        return np.full((len(x), 3), 1 / 3, dtype=np.float32)

    return ServedModel(name="slow", infer=infer, in_shape=(2,), class_names=["a", "b", "c"])


SMALL = {"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [0.5, 0.5]}]}


def test_a_full_queue_refuses_before_parsing():
    """While the queue is full, even a body that is not JSON gets 503 + Retry-After: nothing was parsed."""
    app = create_app([slow_model(0.3)], ServeConfig(max_batch=1, max_queue=2, max_delay_ms=0, retry_after_s=3))

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as ac:
            first = []
            for _ in range(4):  # one running, one handed to the model's thread next, then two queued: full
                first.append(asyncio.ensure_future(ac.post("/v2/models/slow/infer", json=SMALL)))
                await asyncio.sleep(0.05)
            assert app.state.batchers["slow"].queued == 2
            refused = await ac.post("/v2/models/slow/infer", content=b"{not json")
            return refused, await asyncio.gather(*first), await ac.post("/v2/models/slow/infer", content=b"{")

    refused, first, later = asyncio.run(main())
    assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
    assert [r.status_code for r in first] == [200] * 4
    assert later.status_code == 400  # room again: now it is parsed, and refused for what it is


def test_drain_answers_readiness_503_and_never_500():
    """A shutdown timeout shorter than the queued work: what ran answers 200, the rest 503; readiness 503."""
    app = create_app([slow_model(0.1)], ServeConfig(max_batch=1, max_queue=64, max_delay_ms=0))
    service = app.state.service

    async def main():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30) as ac:
            service.start()
            queued = [asyncio.ensure_future(ac.post("/v2/models/slow/infer", json=SMALL)) for _ in range(12)]
            await asyncio.sleep(0.05)
            drain = asyncio.ensure_future(service.drain(timeout=0.35))
            await asyncio.sleep(0.01)
            ready = await ac.get("/v2/health/ready")
            assert (await ac.head("/v2/health/ready")).status_code == 503  # a probe that asks with HEAD
            model_ready = await ac.get("/v2/models/slow/ready")
            late = await ac.post("/v2/models/slow/infer", json=SMALL)
            answers = await asyncio.gather(*queued)
            await drain
            return ready, model_ready, late, answers

    ready, model_ready, late, answers = asyncio.run(main())
    assert ready.status_code == 503 and model_ready.status_code == 503 and ready.headers["retry-after"]
    assert late.status_code == 503 and "shutting down" in late.json()["error"]
    codes = [r.status_code for r in answers]
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    assert all("shut" in r.json()["error"] for r in answers if r.status_code == 503)


def test_a_signal_drains_with_the_port_open_readiness_503_and_no_500(h):
    """uvicorn with the draining server: after SIGTERM the port still answers (503) until the queue is done."""
    import signal
    import threading

    import uvicorn

    from trimnet.serve.server import bind, draining_server

    app = create_app([slow_model(0.2)], ServeConfig(max_batch=1, max_queue=64, max_delay_ms=0),
                     shutdown_timeout=0.5)
    sock = bind("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = draining_server(uvicorn)(uvicorn.Config(app, log_config=None, lifespan="on", loop="asyncio"),
                                      service=app.state.service, drain_timeout=0.5)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while h.get(url + "/v2/health/ready", timeout=2)[0] != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        results = []
        clients = [threading.Thread(target=lambda: results.append(h.get(url + "/v2/models/slow/infer", SMALL)))
                   for _ in range(8)]
        for c in clients:
            c.start()
        while app.state.batchers["slow"].queued < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        server.handle_exit(signal.SIGTERM, None)  # what uvicorn's signal handler calls
        status, body, headers = h.get(url + "/v2/health/ready", timeout=5)
        assert status == 503 and headers.get("retry-after") == "1"  # not "connection refused"
        for c in clients:
            c.join(timeout=20)
        codes = [r[0] for r in results]
        assert len(codes) == 8 and set(codes) <= {200, 503} and 200 in codes and 503 in codes, codes
        thread.join(timeout=20)
        assert not thread.is_alive()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
