"""The HTTP app: KServe v2 routes over one dynamic batcher per model, metrics, limits and authentication.

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

from trimnet.serve.batcher import Batcher, BatcherClosed, QueueFull
from trimnet.serve.config import ServeConfig
from trimnet.serve.metrics import Metrics
from trimnet.serve.model import ServedModel, load_model
from trimnet.serve.protocol import (
    ERROR_SCHEMA, INFER_REQUEST_SCHEMA, INFER_RESPONSE_SCHEMA, RequestError, error_body, infer_response,
    model_metadata, parse_infer,
)

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
SHUTDOWN_TIMEOUT_S = 30.0
INFER_PATH = "/v2/models/{name}/infer"
ROUTE_KEY = "trimnet.route"  # where InferEndpoint names its route for the metrics (Starlette routes do not)


def _json_content(schema: dict) -> dict:
    return {"content": {"application/json": {"schema": schema}}}


ERRORS = {code: {"description": why, **_json_content(ERROR_SCHEMA)} for code, why in {
    400: "malformed JSON, or a tensor with the wrong name, shape, datatype or values",
    401: "a token is configured and the request lacks it",
    404: "no model of that name",
    413: "the request body (or its sample count) is too large",
    503: "the queue is full or the server is shutting down; retry after Retry-After seconds",
}.items()}


def create_app(models: Iterable[ServedModel | Any], config: ServeConfig | None = None):
    """A FastAPI app serving ``models`` (``ServedModel``s, run directories or ``Artifact``s; torch backend)."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.routing import Route

    from trimnet import __version__
    from trimnet.errors import ConfigError

    config = config or ServeConfig()
    served: dict[str, ServedModel] = {}
    owned: list[ServedModel] = []  # loaded here, so closed here; the caller closes the ServedModels it passed
    for m in models:
        if not isinstance(m, ServedModel):
            m = load_model(m)
            owned.append(m)
        if m.name in served:
            raise ConfigError(f"two models are named {m.name!r}; give them different names (--name)")
        served[m.name] = m
    if not served:
        raise ConfigError("serve needs at least one model (a run directory)")
    metrics = Metrics(served, config.max_batch)
    batchers = {name: Batcher(m.infer, max_batch=config.max_batch, max_delay_s=config.max_delay_s,
                              max_queue=config.max_queue, name=name, observer=metrics.observer(name))
                for name, m in served.items()}
    for name, b in batchers.items():
        metrics.watch_queue(name, lambda b=b: b.queued)
    state = {"ready": True}

    @contextlib.asynccontextmanager
    async def lifespan(app):
        state["ready"] = True
        for b in batchers.values():
            b.start()
        log.info("serving %s (max_batch %d, max_delay %g ms)", ", ".join(served), config.max_batch,
                 config.max_delay_ms)
        try:
            yield
        finally:
            # the HTTP server has stopped taking requests and waited for those in flight; finish the queue
            state["ready"] = False
            for b in batchers.values():
                await b.close(timeout=SHUTDOWN_TIMEOUT_S)
            for m in owned:
                m.close()
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
    app.state.metrics = metrics
    app.state.batchers = batchers
    app.state.models = served
    app.add_middleware(Gate, metrics=metrics, token=config.token, max_inflight=config.max_inflight,
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

    def model_of(name: str) -> ServedModel:
        model = served.get(name)
        if model is None:
            raise RequestError(f"no model named {name[:100]!r}; this server has: {', '.join(served)}", status=404)
        return model

    @app.get("/v2", summary="server metadata")
    async def server_metadata():
        return {"name": "trimnet", "version": __version__, "extensions": []}

    @app.get("/v2/health/live", summary="the process is up")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="every model can take requests", responses={503: ERRORS[503]})
    async def ready():
        if not state["ready"]:
            return error(503, "shutting down")
        return {"ready": True}

    @app.get("/v2/models/{name}", summary="model metadata: input and outputs, shapes, datatypes",
             responses={404: ERRORS[404]})
    async def metadata(name: str):
        model = model_of(name)
        params = {"max_batch": config.max_batch, "normalize": config.normalize, "top_k": config.top_k,
                  "backend": model.info.get("backend"), "normalization": model.info.get("normalization")}
        return model_metadata(model.name, model.in_shape, model.class_names, model.platform, params)

    @app.get("/v2/models/{name}/ready", summary="the model can take requests", responses={404: ERRORS[404]})
    async def model_ready(name: str):
        model_of(name)
        if not state["ready"]:
            return error(503, "shutting down")
        return {"name": name, "ready": True}

    async def infer(name: str, body: bytes) -> dict:
        model = model_of(name)
        req = parse_infer(body, model.in_shape, len(model.class_names), normalize=config.normalize,
                          top_k=config.top_k)
        if len(req.x) > config.max_queue:
            raise RequestError(f"the request holds {len(req.x)} samples; this server queues at most "
                               f"{config.max_queue}; send at most that many per request", status=413)
        x = model.preprocess(req.x) if req.normalize and model.preprocess is not None else req.x
        try:
            probabilities = await batchers[name].submit(x)
        except QueueFull:
            raise RequestError(f"the server is at capacity ({config.max_queue} samples queued for {name}); "
                               f"retry after {config.retry_after_s} s", 503,
                               {"Retry-After": str(config.retry_after_s)}) from None
        except BatcherClosed:
            raise RequestError("the server is shutting down", 503,
                               {"Retry-After": str(config.retry_after_s)}) from None
        return infer_response(name, req, probabilities, model.class_names)

    # Requests are served by InferEndpoint, a plain ASGI app ahead of FastAPI's router: FastAPI's
    # per-request machinery (dependency solving, telemetry, exit stacks) cost more server time than
    # parsing and batching together (benchmarks/serve_load.py). This route documents it in /openapi.json.
    @app.post(INFER_PATH, summary="class probabilities and top-k classes for a batch of inputs",
              openapi_extra={"requestBody": {"required": True, **_json_content(INFER_REQUEST_SCHEMA)}},
              responses={200: _json_content(INFER_RESPONSE_SCHEMA), **{c: ERRORS[c] for c in (400, 404, 413, 503)}})
    async def infer_documented(name: str, request: Request):  # pragma: no cover - shadowed by InferEndpoint
        return JSONResponse(await infer(name, await read_body(request, config.max_body_bytes)))

    app.router.routes.insert(0, Route(INFER_PATH, InferEndpoint(infer, config.max_body_bytes), methods=["POST"]))

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        data, content_type = metrics.render()
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
    """``POST /v2/models/{name}/infer`` as a plain ASGI app: read, ``infer``, answer JSON (or ``{"error"}``)."""

    def __init__(self, infer, max_body_bytes: int):
        self.infer = infer
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        scope[ROUTE_KEY] = INFER_PATH
        headers: dict[str, str] = {}
        try:
            body = await receive_body(scope, receive, self.max_body_bytes)
            status, payload = 200, await self.infer(scope["path_params"]["name"], body)
        except RequestError as exc:
            status, payload, headers = exc.status, error_body(str(exc)), exc.headers
        data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                                *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
        await send({"type": "http.response.body", "body": data})


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
