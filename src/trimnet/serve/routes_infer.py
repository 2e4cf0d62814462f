"""``POST /v2/models/{name}[/versions/{version}]/infer``: a plain ASGI endpoint that skips FastAPI.

FastAPI's per-request machinery (dependency solving, telemetry, exit stacks) cost more server time
than parsing and batching together (benchmarks/serve_load.py), so no FastAPI route serves inference:
the app hands an infer path (``infer_route``) straight to its endpoint, past Starlette's middleware
and router (a plain Starlette ``Route`` serves it where the app is mounted under a root path);
``/openapi.json`` documents the endpoint all the same.
"""

import json
import re

from trimnet.serve.gate import CLOSE, ROUTE_KEY, unread_body_headers
from trimnet.serve.protocol import RequestError, error_body
from trimnet.serve.rest import (
    ERRORS, HEADER_LENGTH, INFER_REQUEST_SCHEMA, INFER_RESPONSE_SCHEMA, HeaderCache, encode_response, json_content,
    parse_infer,
)
from trimnet.serve.service import VERSION, Service

INFER_PATH = "/v2/models/{name}/infer"
INFER_PATHS = (INFER_PATH, "/v2/models/{name}/versions/{version}/infer")
HEADER_LENGTH_KEY = HEADER_LENGTH.encode()


def add_infer_routes(app, service: Service) -> None:
    """The infer endpoints, first in the router, and their entries in ``/openapi.json``."""
    from starlette.routing import Route

    for path in INFER_PATHS:
        app.router.routes.insert(0, Route(path, InferEndpoint(service, path), methods=["POST"]))
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:  # FastAPI builds the schema once and keeps it
            schema = generate()
            schema["paths"].update({path: {"post": _operation(path)} for path in INFER_PATHS})
        return app.openapi_schema

    app.openapi = openapi


def _operation(path: str) -> dict:
    """The OpenAPI operation of one infer path."""
    return {
        "summary": "class probabilities and top-k classes (classification) or predicted values (regression) "
                   "for a batch of inputs",
        "operationId": "infer" + re.sub(r"\W+", "_", path) + "_post",
        "parameters": [{"name": name, "in": "path", "required": True, "schema": {"type": "string", "title": name.title()}}
                       for name in re.findall(r"\{(\w+)\}", path)],
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": INFER_REQUEST_SCHEMA},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"200": {"description": "Successful Response", **json_content(INFER_RESPONSE_SCHEMA)},
                      **{str(c): ERRORS[c] for c in (400, 404, 413, 422, 503)}},
    }


def infer_route(scope) -> tuple[str, dict[str, str]] | None:
    """(route, path parameters) when ``scope`` is a POST to an infer path, else None (the router decides).

    It matches what the router's ``Route``s would: one path segment for the name and the version.
    """
    path = scope["path"]
    if scope["method"] != "POST" or not path.startswith("/v2/models/") or not path.endswith("/infer") \
            or scope.get("root_path"):
        return None
    parts = path[len("/v2/models/"):-len("/infer")].split("/")
    if len(parts) == 1 and parts[0]:
        return INFER_PATH, {"name": parts[0]}
    if len(parts) == 3 and parts[1] == "versions" and parts[0] and parts[2]:
        return INFER_PATHS[1], {"name": parts[0], "version": parts[2]}
    return None


async def receive_body(scope, receive, limit: int) -> bytes:
    """The request body from ASGI ``receive``, refused with 413 as soon as it is known to pass ``limit`` bytes."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if not value.isdigit():
                raise RequestError(f"Content-Length {value[:40].decode('latin-1')!r} is not a number of bytes")
            if int(value) > limit:
                raise RequestError(f"the request body has {int(value)} bytes; the limit is {limit} (send fewer "
                                   "samples per request, or start the server with a larger --max-body-mb)",
                                   status=413)
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError("the client went away before sending the whole body")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestError(f"the request body passes the limit of {limit} bytes", status=413)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class InferEndpoint:
    """``POST .../infer`` as a plain ASGI app: admit, read, parse, batch, answer (JSON or binary)."""

    def __init__(self, service: Service, route: str):
        self.service = service
        self.route = route
        self.headers = HeaderCache()

    async def __call__(self, scope, receive, send):
        status, headers, data = await self.respond(scope, receive)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def respond(self, scope, receive) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """The response to one request: (status, headers, body); every problem with it is a 4xx or a 503.

        A request refused before its body is read (unknown model, full queue, shutting down, too
        large) is answered at once, its body unread: see ``gate.unread_body_headers``.
        """
        scope[ROUTE_KEY] = self.route
        service = self.service
        headers: dict[str, str] = {}
        header_length = None
        params = scope["path_params"]
        body_read = False
        try:
            model = service.model(params["name"], params.get("version"))
            try:
                service.admit(model.name)  # from the path alone: a full queue costs no parsing
            except RequestError as exc:
                await service.hold_refusal(exc)
                raise
            length = None
            for key, value in scope["headers"]:
                if key == HEADER_LENGTH_KEY:
                    length = value.decode("latin-1")
                elif key == b"content-encoding" and value.lower() not in (b"identity", b""):
                    raise RequestError(f"Content-Encoding {value[:40].decode('latin-1')!r} is not supported here; "
                                       "send the request body uncompressed (tritonclient: leave "
                                       "request_compression_algorithm unset)", status=415)
            body = await receive_body(scope, receive, service.config.max_body_bytes)
            body_read = True
            req = parse_infer(body, service.specs[model.name], normalize=service.config.normalize,
                              top_k=service.config.top_k, header_length=length, cache=self.headers)
            tensors = await service.infer(model, req)
            status = 200
            data, header_length = encode_response(model.name, VERSION, req, tensors)
        except RequestError as exc:
            status, headers = exc.status, exc.headers
            data = json.dumps(error_body(str(exc)), ensure_ascii=False).encode()
        out = [(b"content-length", str(len(data)).encode()),
               *((k.lower().encode(), v.encode()) for k, v in headers.items())]
        if header_length is None:
            out.append((b"content-type", b"application/json"))
        else:
            out += [(b"content-type", b"application/octet-stream"),
                    (HEADER_LENGTH_KEY, str(header_length).encode())]
        if service.draining:  # the connection closes soon: a client should not send its next request on it
            out.append(CLOSE)
        elif not body_read:
            out += unread_body_headers(scope)
        return status, out, data
