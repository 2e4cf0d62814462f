"""The HTTP app: the KServe v2 REST routes (and Triton's extensions) over the shared ``Service``.

Errors answer ``{"error": message}`` with a 4xx status, or 503 (with ``Retry-After``) when
the server is full or shutting down; a request cannot make it answer any other 5xx.
The routes live in ``routes_health.py`` (health, metadata), ``routes_infer.py`` (inference),
``routes_repository.py`` (statistics, repository, configuration, metrics); ``gate.py`` is what
every request passes first, ahead of FastAPI.
"""

# no ``from __future__ import annotations``: FastAPI reads the exception handlers' annotations, and
# ``Request`` is imported inside the functions so that importing this module does not need fastapi
import contextlib
import inspect
import logging
from typing import Any, Iterable

from trimnet.serve.config import ServeConfig
from trimnet.serve.gate import Gate
from trimnet.serve.model import ServedModel
from trimnet.serve.protocol import RequestError
from trimnet.serve.rest import error_response
from trimnet.serve.routes_health import add_health_routes, add_model_routes
from trimnet.serve.routes_infer import INFER_PATHS, InferEndpoint, add_infer_routes, infer_route
from trimnet.serve.routes_repository import add_config_and_stats_routes, add_metrics_route, add_repository_routes
from trimnet.serve.service import Service

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 30.0
DESCRIPTION = ("KServe v2 (Open Inference Protocol) inference with dynamic batching. Inputs are raw, as in the "
               "training files: the server applies each model's training normalization unless the request sets "
               "parameters.normalize to false.")


def create_app(models: Iterable[ServedModel | Any], config: ServeConfig | None = None, *,
               grpc_address: str | None = None, shutdown_timeout: float = SHUTDOWN_TIMEOUT_S):
    """A FastAPI app serving ``models`` (``ServedModel``s, run directories or ``Artifact``s; torch backend).

    ``grpc_address`` (``host:port``, port 0: any free one) also serves the KServe v2 gRPC API from
    the same event loop and batchers while the app runs (needs the ``grpc`` extra).
    """
    from fastapi import FastAPI

    from trimnet import __version__

    config = config or ServeConfig()
    service = Service(models, config)
    extra: dict[str, Any] = {}
    if "telemetry" in inspect.signature(FastAPI).parameters:
        # FastAPI >= 0.16x looks up OpenTelemetry providers on every request; /metrics covers what we report
        extra["telemetry"] = {"tracing": False, "metrics": False, "logs": False}
    app = _serve_app_class(FastAPI)(title="trimnet serve", version=__version__, description=DESCRIPTION,
                                    lifespan=_lifespan(service, grpc_address, shutdown_timeout), **extra)
    app.state.config = config
    app.state.service = service
    app.state.metrics = service.metrics
    app.state.batchers = service.batchers
    app.state.models = service.models
    app.gate = Gate(app.dispatch, metrics=service.metrics, token=config.token, max_inflight=config.max_inflight,
                    retry_after=config.retry_after_s, refusal_delay=config.refusal_delay_s)
    app.infer_endpoints = {route: InferEndpoint(service, route) for route in INFER_PATHS}
    _add_error_handlers(app)
    add_health_routes(app, service)
    add_repository_routes(app, service)  # "/v2/models/stats" ahead of the model named "{name}"
    add_model_routes(app, service)
    add_config_and_stats_routes(app, service)
    add_infer_routes(app, service)
    add_metrics_route(app, service)
    return app


def _serve_app_class(fastapi_class):
    """FastAPI, with every request passing the ``Gate`` first and inference skipping the router.

    Starlette's and FastAPI's middleware and routing took about 15 % of the event loop's time per
    inference request (``py-spy``, benchmarks/serve_load.py); an infer path goes straight to its
    endpoint, everything else through FastAPI as usual.
    """

    class ServeApp(fastapi_class):
        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                return await self.gate(scope, receive, send)
            return await super().__call__(scope, receive, send)

        async def dispatch(self, scope, receive, send):
            found = infer_route(scope)
            if found is None:
                return await super().__call__(scope, receive, send)
            route, params = found
            scope["path_params"] = params
            return await self.infer_endpoints[route](scope, receive, send)

    return ServeApp


def _lifespan(service: Service, grpc_address: str | None, shutdown_timeout: float):
    """Start the batchers (and gRPC) with the app; on shutdown finish the queue, then close."""
    served, config = service.models, service.config

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

    return lifespan


def _add_error_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    @app.exception_handler(RequestError)
    async def _request_error(request: Request, exc: RequestError):
        return error_response(exc.status, str(exc), exc.headers)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException):
        return error_response(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        return error_response(400, f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):  # pragma: no cover - a bug, logged with its traceback
        log.error("unhandled error on %s", request.url.path, exc_info=exc)
        return error_response(500, "internal error; see the server log")
