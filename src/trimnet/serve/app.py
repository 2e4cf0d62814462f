"""The HTTP app: the KServe v2 REST routes (and Triton's extensions) over the shared ``Service``.

Errors answer ``{"error": message}`` with a 4xx status, or 503 (with ``Retry-After``) when
the server is full or shutting down; a request cannot make it answer any other 5xx.
"""

# no ``from __future__ import annotations``: FastAPI reads the route functions' annotations, and
# ``Request`` is imported inside create_app so that importing this module does not need fastapi
import contextlib
import hmac
import inspect
import json
import logging
import time
from typing import Any, Iterable

from trimnet.serve.config import ServeConfig
from trimnet.serve.metrics import Metrics
from trimnet.serve.model import ServedModel
from trimnet.serve.protocol import RequestError, error_body
from trimnet.serve.rest import (
    ERROR_SCHEMA, HEADER_LENGTH, INFER_REQUEST_SCHEMA, INFER_RESPONSE_SCHEMA, encode_response, parse_infer,
)
from trimnet.serve.service import VERSION, Service

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
SHUTDOWN_TIMEOUT_S = 30.0
INFER_PATH = "/v2/models/{name}/infer"
INFER_PATHS = (INFER_PATH, "/v2/models/{name}/versions/{version}/infer")
HEADER_LENGTH_KEY = HEADER_LENGTH.encode()
EXTENSIONS = ("binary_tensor_data", "classification", "model_repository", "statistics", "model_configuration")
ROUTE_KEY = "trimnet.route"  # where InferEndpoint names its route for the metrics (Starlette routes do not)


def _json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


ERRORS = {code: {"description": why, **_json_content(ERROR_SCHEMA)} for code, why in {
    400: "malformed JSON, or a tensor with the wrong name, shape, datatype or values",
    401: "a token is configured and the request lacks it",
    404: "no model of that name",
    413: "the request body (or its sample count) is too large",
    422: "the model's outputs for these inputs are NaN or infinite, which JSON cannot carry (ask for binary)",
    503: "the queue is full or the server is shutting down; retry after Retry-After seconds",
}.items()}


def create_app(models: Iterable[ServedModel | Any], config: ServeConfig | None = None, *,
               grpc_address: str | None = None, shutdown_timeout: float = SHUTDOWN_TIMEOUT_S):
    """A FastAPI app serving ``models`` (``ServedModel``s, run directories or ``Artifact``s; torch backend).

    ``grpc_address`` (``host:port``, port 0: any free one) also serves the KServe v2 gRPC API from
    the same event loop and batchers while the app runs (needs the ``grpc`` extra).
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from trimnet import __version__

    config = config or ServeConfig()
    service = Service(models, config)
    served = service.models

    @contextlib.asynccontextmanager
    async def lifespan(app):
        service.start()
        grpc_server = None
        if grpc_address is not None:
            from trimnet.serve.grpc_server import start_grpc

            grpc_server, port = await start_grpc(service, grpc_address)
            app.state.grpc_port = port
            log.info("gRPC listening on %s:%d", grpc_address.rpartition(":")[0], port)
        log.info("serving %s (max_batch %d, max_delay %g ms)", ", ".join(served), config.max_batch,
                 config.max_delay_ms)
        try:
            yield
        finally:
            # the HTTP server has stopped taking requests and waited for those in flight; finish the queue
            if not service.draining:
                await service.drain(shutdown_timeout)
            if grpc_server is not None:
                await grpc_server.stop(grace=1.0)
            await service.close_batchers(timeout=0)
            service.close_models()
            log.info("stopped serving %s", ", ".join(served))

    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # FastAPI >= 0.16x looks up OpenTelemetry providers on every request; /metrics covers what we report
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = FastAPI(title="trimnet serve", version=__version__, lifespan=lifespan, **extra,
                  description="KServe v2 (Open Inference Protocol) inference with dynamic batching. Inputs are "
                              "raw, as in the training files: the server applies each model's training "
                              "normalization unless the request sets parameters.normalize to false.")
    app.state.config = config
    app.state.service = service
    app.state.metrics = service.metrics
    app.state.batchers = service.batchers
    app.state.models = served
    app.add_middleware(Gate, metrics=service.metrics, token=config.token, max_inflight=config.max_inflight,
                       retry_after=config.retry_after_s)

    def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse(error_body(message), status_code=status, headers=headers)

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return error(exc.status, str(exc), exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error(400, f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # pragma: no cover - a bug, logged with its traceback
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error(500, "internal error; see the server log")

    def not_ready() -> JSONResponse:
        return error(503, "shutting down", {"Retry-After": str(config.retry_after_s)})

    @app.get("/v2", summary="server metadata")
    async def server_metadata():
        return {"name": "trimnet", "version": __version__, "extensions": list(EXTENSIONS)}

    @app.get("/v2/health/live", summary="the process is up")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="every model can take requests", responses={503: ERRORS[503]})
    async def ready():
        return {"ready": True} if service.ready else not_ready()

    @app.get("/v2/models/stats", summary="statistics of every model (Triton's statistics extension)")
    async def all_stats():
        return service.statistics()

    @app.post("/v2/repository/index", summary="the served models and their state (model repository extension)")
    async def repository_index():
        return service.index()

    @app.post("/v2/repository/models/{name}/load", summary="not supported: the models are fixed at start",
              responses={400: ERRORS[400], 404: ERRORS[404]})
    @app.post("/v2/repository/models/{name}/unload", summary="not supported: the models are fixed at start",
              responses={400: ERRORS[400], 404: ERRORS[404]})
    async def load_unload(name: str):
        service.model(name)
        raise RequestError("this server serves the models it was started with and does not load or unload "
                           "models; restart `trimnet serve` with the run directories you want")

    for prefix in ("/v2/models/{name}", "/v2/models/{name}/versions/{version}"):
        @app.get(prefix, summary="model metadata: input and outputs, shapes, datatypes",
                 responses={404: ERRORS[404]})
        async def metadata(name: str, version: str | None = None):
            return service.metadata(service.model(name, version))

        @app.get(prefix + "/ready", summary="the model can take requests", responses={404: ERRORS[404], 503: ERRORS[503]})
        async def model_ready(name: str, version: str | None = None):
            service.model(name, version)
            return {"name": name, "ready": True} if service.ready else not_ready()

        @app.get(prefix + "/config", summary="the model configuration, as Triton's ModelConfig JSON",
                 responses={404: ERRORS[404]})
        async def config_of(name: str, version: str | None = None):
            return service.model_config(service.model(name, version))

        @app.get(prefix + "/stats", summary="the model's statistics (Triton's statistics extension)",
                 responses={404: ERRORS[404]})
        async def stats_of(name: str, version: str | None = None):
            return service.statistics(name, version)

    # Requests are served by InferEndpoint, a plain ASGI app ahead of FastAPI's router: FastAPI's
    # per-request machinery (dependency solving, telemetry, exit stacks) cost more server time than
    # parsing and batching together (benchmarks/serve_load.py). These routes document it in /openapi.json.
    for path in INFER_PATHS:
        @app.post(path, summary="class probabilities and top-k classes for a batch of inputs",
                  openapi_extra={"requestBody": {"required": True, "content": {
                      "application/json": {"schema": INFER_REQUEST_SCHEMA},
                      "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
                  responses={200: _json_content(INFER_RESPONSE_SCHEMA),
                             **{c: ERRORS[c] for c in (400, 404, 413, 422, 503)}})
        async def infer_documented(name: str, request: Request):  # pragma: no cover - shadowed by InferEndpoint
            raise RequestError("unreachable")

    for path in INFER_PATHS:
        app.router.routes.insert(0, Route(path, InferEndpoint(service, path), methods=["POST"]))

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        data, content_type = service.metrics.render()
        return Response(data, media_type=content_type)

    return app


async def read_body(request, limit: int) -> bytes:
    """The body of a Starlette request, refused with 413 as soon as it is known to pass ``limit`` bytes."""
    return await receive_body(request.scope, request.receive, limit)


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

    async def __call__(self, scope, receive, send):
        scope[ROUTE_KEY] = self.route
        service = self.service
        headers: dict[str, str] = {}
        header_length = None
        params = scope["path_params"]
        try:
            try:
                model = service.model(params["name"], params.get("version"))
                service.admit(model.name)  # from the path alone: a full queue costs no parsing
            except RequestError:
                await drain_body(receive)  # unread, so that the connection can carry the next request
                raise
            body = await receive_body(scope, receive, service.config.max_body_bytes)
            length = None
            for key, value in scope["headers"]:
                if key == HEADER_LENGTH_KEY:
                    length = value.decode("latin-1")
            req = parse_infer(body, service.specs[model.name], normalize=service.config.normalize,
                              top_k=service.config.top_k, header_length=length)
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
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": data})


async def drain_body(receive) -> None:
    """Read and drop a request body (a refused request's), so the connection can carry the next one."""
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class Gate:
    """Plain ASGI middleware: counts and times every request, checks the token, bounds requests in flight."""

    def __init__(self, app, *, metrics: Metrics, token: str | None, max_inflight: int, retry_after: int):
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None
        self.max_inflight = max_inflight
        self.retry_after = str(retry_after).encode()
        self.inflight = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500  # what a crash before the response would have answered

        async def send_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            probe = scope["path"] in OPEN_PATHS  # health probes: no token, and never refused as overload
            if self.token is not None and not probe and not self._authorized(scope):
                await _respond(send_status, 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)",
                               [(b"www-authenticate", b"Bearer")])
            elif self.inflight >= self.max_inflight and not probe:
                await _respond(send_status, 503, f"the server is handling {self.inflight} requests, its limit",
                               [(b"retry-after", self.retry_after)])
            else:
                self.inflight += 1
                self.metrics.inflight.inc()
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    self.inflight -= 1
                    self.metrics.inflight.dec()
        finally:
            route = getattr(scope.get("route"), "path", None) or scope.get(ROUTE_KEY, "other")
            self.metrics.request(route, scope.get("method", ""), status, time.perf_counter() - start)

    def _authorized(self, scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
        return False


async def _respond(send, status: int, message: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = json.dumps(error_body(message)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})
