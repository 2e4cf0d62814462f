"""Health and metadata: the server's (``/v2``), liveness and readiness, each model's metadata and readiness."""

# no ``from __future__ import annotations``: FastAPI reads the route functions' annotations
from trimnet.serve.rest import ERRORS, error_response
from trimnet.serve.service import Service

EXTENSIONS = ("binary_tensor_data", "classification", "model_repository", "statistics", "model_configuration")
MODEL_PREFIXES = ("/v2/models/{name}", "/v2/models/{name}/versions/{version}")


def not_ready(service: Service):
    """503 with ``Retry-After``: the server is draining."""
    return error_response(503, "shutting down", {"Retry-After": str(service.config.retry_after_s)})


def add_health_routes(app, service: Service) -> None:
    from trimnet import __version__

    @app.get("/v2", summary="server metadata")
    async def server_metadata():
        return {"name": "trimnet", "version": __version__, "extensions": list(EXTENSIONS)}

    @app.get("/v2/health/live", summary="the process is up")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready", summary="every model can take requests", responses={503: ERRORS[503]})
    async def ready():
        return {"ready": True} if service.ready else not_ready(service)

    # HEAD too, for load balancers that probe with it (the same answer; the server leaves out the body)
    for path, probe in (("/v2/health/live", live), ("/v2/health/ready", ready)):
        app.add_api_route(path, probe, methods=["HEAD"], include_in_schema=False)


def add_model_routes(app, service: Service) -> None:
    """``GET /v2/models/{name}[/versions/{version}]`` and ``.../ready``."""
    for prefix in MODEL_PREFIXES:
        @app.get(prefix, summary="model metadata: input and outputs, shapes, datatypes",
                 responses={404: ERRORS[404]})
        async def metadata(name: str, version: str | None = None):
            return service.metadata(service.model(name, version))

        @app.get(prefix + "/ready", summary="the model can take requests", responses={404: ERRORS[404], 503: ERRORS[503]})
        async def model_ready(name: str, version: str | None = None):
            service.model(name, version)
            return {"name": name, "ready": True} if service.ready else not_ready(service)
