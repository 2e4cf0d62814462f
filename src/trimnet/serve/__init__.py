"""Serving: a KServe v2 (Open Inference Protocol) HTTP server with dynamic batching and metrics.

``serve(["runs/digits-cnn"], backend="onnxruntime")`` runs it; ``create_app(models, config)``
builds the FastAPI app (for tests or another ASGI server); ``infer_remote`` is the client
``trimnet predict --url`` uses. Names load lazily: ``import trimnet.serve`` imports neither
fastapi nor uvicorn.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_API = {
    "create_app": "trimnet.serve.app",
    "serve": "trimnet.serve.server",
    "ServeConfig": "trimnet.serve.config",
    "ServedModel": "trimnet.serve.model",
    "load_model": "trimnet.serve.model",
    "Batcher": "trimnet.serve.batcher",
    "QueueFull": "trimnet.serve.batcher",
    "RequestError": "trimnet.serve.protocol",
    "infer_remote": "trimnet.serve.client",
    "remote_metadata": "trimnet.serve.client",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'trimnet.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # pragma: no cover
    from trimnet.serve.app import create_app
    from trimnet.serve.batcher import Batcher, QueueFull
    from trimnet.serve.client import infer_remote, remote_metadata
    from trimnet.serve.config import ServeConfig
    from trimnet.serve.model import ServedModel, load_model
    from trimnet.serve.protocol import RequestError
    from trimnet.serve.server import serve
