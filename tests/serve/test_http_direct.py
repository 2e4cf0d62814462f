"""The direct infer path: uvicorn's httptools protocol answering infer requests without ASGI, over a real socket.

It must answer exactly as the ASGI app does (same body, same status, same gate), keep HTTP/1.1
keep-alive and pipelining working, and leave every other request to ASGI.
"""

import asyncio
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from trimnet.serve import ServeConfig, create_app
from trimnet.serve import http_direct

pytest.importorskip("httptools")
uvicorn = pytest.importorskip("uvicorn")


def binary_request(x: np.ndarray, path: str = "/v2/models/digits-cnn/infer", extra_headers: str = "") -> bytes:
    """An infer request as tritonclient sends it: JSON header, then the tensor's bytes (binary data extension)."""
    header = json.dumps({"inputs": [{"name": "input", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}],
                         "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}},
                                     {"name": "classes"}]}).encode()
    body = header + x.astype("<f4").tobytes()
    return (f"POST {path} HTTP/1.1\r\nhost: t\r\ninference-header-content-length: {len(header)}\r\n"
            f"content-type: application/octet-stream\r\ncontent-length: {len(body)}\r\n{extra_headers}\r\n"
            ).encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict(line.split(": ", 1) for line in lines[1:] if line)
    body = await reader.readexactly(int(headers["content-length"]))
    return status, headers, body


async def serve(app, exchange):
    """Serve ``app`` with the direct protocol on a free loopback port and run ``exchange(reader, writer)``."""
    protocol_class = http_direct.direct_protocol(app)
    assert protocol_class is not None, "httptools and uvicorn are installed: the direct path must be on"
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", log_config=None)
    config.load()
    state = uvicorn.server.ServerState()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: config.http_protocol_class(config=config, server_state=state, app_state={}, _loop=loop),
        "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await exchange(reader, writer)
        finally:
            writer.close()
    finally:
        server.close()
        await app.state.service.close_batchers(timeout=1)


@pytest.fixture
def counted(monkeypatch):
    """How many requests the direct path answered."""
    calls = []
    answer = http_direct.answer

    async def counting(*args, **kwargs):
        calls.append(args[2])
        return await answer(*args, **kwargs)

    monkeypatch.setattr(http_direct, "answer", counting)
    return calls


def test_pipelined_infer_requests_are_answered_directly_and_as_asgi_answers(served, raw_digits, counted):
    x = raw_digits[0][:3]
    config = ServeConfig(max_batch=8, max_delay_ms=1)
    with TestClient(create_app([served], config)) as client:  # the same request through ASGI
        request = binary_request(x)
        head, _, body = request.partition(b"\r\n\r\n")
        headers = dict(line.split(": ", 1) for line in head.decode().split("\r\n")[1:])
        expected = client.post("/v2/models/digits-cnn/infer", content=body,
                               headers={"inference-header-content-length": headers["inference-header-content-length"]})
    assert expected.status_code == 200

    async def exchange(reader, writer):
        # two infer requests and a readiness probe in one send: HTTP/1.1 pipelining, answered in order
        writer.write(binary_request(x) + binary_request(x[:1], "/v2/models/digits-cnn/versions/1/infer")
                     + b"GET /v2/health/ready HTTP/1.1\r\nhost: t\r\n\r\n")
        return [await read_response(reader) for _ in range(3)]

    first, second, ready = asyncio.run(serve(create_app([served], config), exchange))
    assert first[0] == 200 and first[2] == expected.content
    assert first[1]["inference-header-content-length"] == expected.headers["inference-header-content-length"]
    assert first[1]["content-type"] == "application/octet-stream"
    assert second[0] == 200 and json.loads(second[2][:int(second[1]["inference-header-content-length"])])[
        "outputs"][0]["shape"] == [1, 10]
    assert ready[0] == 200  # not an infer request: through ASGI, on the same connection
    assert counted == ["/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"]


def test_the_gate_and_errors_hold_on_the_direct_path(served, raw_digits, counted):
    x = raw_digits[0][:1]
    app = create_app([served], ServeConfig(max_batch=4, max_delay_ms=1, token="s3cret"))

    async def exchange(reader, writer):
        answers = []
        for extra in ("", "authorization: Bearer wrong\r\n", "authorization: Bearer s3cret\r\n"):
            writer.write(binary_request(x, extra_headers=extra))
            answers.append(await read_response(reader))
        writer.write(binary_request(x, "/v2/models/nope/infer", "authorization: Bearer s3cret\r\n"))
        answers.append(await read_response(reader))
        writer.write(binary_request(x, extra_headers="authorization: Bearer s3cret\r\nconnection: close\r\n"))
        answers.append(await read_response(reader))
        answers.append(await asyncio.wait_for(reader.read(), 10))  # the server closes: b""
        return answers

    none, wrong, good, unknown, closing, rest = asyncio.run(serve(app, exchange))
    assert none[0] == wrong[0] == 401 and none[1]["www-authenticate"] == "Bearer"
    assert "token" in json.loads(none[2])["error"]
    assert good[0] == 200
    assert unknown[0] == 404 and "no model named 'nope'" in json.loads(unknown[2])["error"]
    assert closing[0] == 200 and closing[1]["connection"] == "close" and rest == b""
    assert len(counted) == 5
    text = app.state.metrics.render()[0].decode()
    for status in ("401", "200", "404"):
        assert f'method="POST",route="/v2/models/{{name}}/infer",status="{status}"' in text


def test_a_refused_request_is_answered_without_reading_its_body(served, raw_digits, counted):
    """A refusal comes from the headers alone: a small unread body is dropped and the connection carries on;
    a large one, one held back for 100-continue, or any during shutdown closes the connection instead."""
    x = raw_digits[0][:1]
    auth = "authorization: Bearer s3cret\r\n"
    config = ServeConfig(max_batch=4, max_delay_ms=1, token="s3cret")

    async def unread(reader, writer):
        answers = []
        writer.write(binary_request(x, "/v2/models/nope/infer", auth))  # refused, its body never read
        answers.append(await read_response(reader))
        writer.write(binary_request(x, extra_headers=auth))  # the same connection, the next request
        answers.append(await read_response(reader))
        # a header length that str.isdigit() takes for a number ('²') but int() does not: a 400, not a 500
        writer.write(f"POST /v2/models/digits-cnn/infer HTTP/1.1\r\nhost: t\r\n{auth}content-length: 2\r\n"
                     "inference-header-content-length: \u00b2\r\n\r\n{}".encode("latin-1"))
        answers.append(await read_response(reader))
        # 10^12 bytes declared and none sent: a server that read the body first would never answer
        writer.write(f"POST /v2/models/nope/infer HTTP/1.1\r\nhost: t\r\n{auth}content-length: 1000000000000\r\n"
                     "\r\n".encode())
        answers.append(await read_response(reader))
        answers.append(await asyncio.wait_for(reader.read(), 10))  # then it closes: b""
        return answers

    unknown, good, superscript, huge, rest = asyncio.run(serve(create_app([served], config), unread))
    assert unknown[0] == 404 and "connection" not in unknown[1]
    assert good[0] == 200
    assert superscript[0] == 400 and "must be a number of bytes" in json.loads(superscript[2])["error"]
    assert huge[0] == 404 and huge[1]["connection"] == "close" and rest == b""

    async def held_back(reader, writer):  # the client waits for 100 Continue before sending its body
        writer.write(f"POST /v2/models/digits-cnn/infer HTTP/1.1\r\nhost: t\r\nauthorization: Bearer wrong\r\n"
                     f"expect: 100-continue\r\ncontent-length: 500\r\n\r\n".encode())
        return await read_response(reader), await asyncio.wait_for(reader.read(), 10)

    (status, headers, _), rest = asyncio.run(serve(create_app([served], config), held_back))
    assert status == 401 and headers["connection"] == "close" and rest == b""  # no "100 Continue" came first

    draining = create_app([served], config)
    draining.state.service.draining = True

    async def shutting_down(reader, writer):
        writer.write(binary_request(x, extra_headers=auth))
        return await read_response(reader), await asyncio.wait_for(reader.read(), 10)

    (status, headers, body), rest = asyncio.run(serve(draining, shutting_down))
    assert status == 503 and "shutting down" in json.loads(body)["error"]
    assert headers["connection"] == "close" and rest == b""
    assert len(counted) == 6  # every one answered on the direct path


def test_without_httptools_uvicorn_picks_its_own(monkeypatch, served):
    import builtins

    real_import = builtins.__import__

    def no_httptools(name, *args, **kwargs):
        if name.startswith("uvicorn.protocols.http.httptools_impl"):
            raise ImportError("no httptools")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_httptools)
    assert http_direct.direct_protocol(create_app([served])) is None
