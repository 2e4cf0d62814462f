"""Triton's extensions over REST: statistics, the model repository, model configuration; and ``/metrics``."""

# no ``from __future__ import annotations``: FastAPI reads the route functions' annotations
from trimnet.serve.protocol import RequestError
from trimnet.serve.rest import ERRORS
from trimnet.serve.routes_health import MODEL_PREFIXES
from trimnet.serve.service import Service


def add_repository_routes(app, service: Service) -> None:
    # before the model routes: "/v2/models/stats" is not the metadata of a model named "stats"
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


def add_config_and_stats_routes(app, service: Service) -> None:
    """``.../config`` (Triton's ModelConfig JSON) and ``.../stats`` of one model."""
    for prefix in MODEL_PREFIXES:
        @app.get(prefix + "/config", summary="the model configuration, as Triton's ModelConfig JSON",
                 responses={404: ERRORS[404]})
        async def config_of(name: str, version: str | None = None):
            return service.model_config(service.model(name, version))

        @app.get(prefix + "/stats", summary="the model's statistics (Triton's statistics extension)",
                 responses={404: ERRORS[404]})
        async def stats_of(name: str, version: str | None = None):
            return service.statistics(name, version)


def add_metrics_route(app, service: Service) -> None:
    from fastapi.responses import Response

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def prometheus():
        data, content_type = service.metrics.render()
        return Response(data, media_type=content_type)
