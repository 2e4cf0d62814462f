"""Run the app under uvicorn: bind (127.0.0.1 unless told otherwise), serve, shut down gracefully.

On SIGINT or SIGTERM uvicorn stops accepting connections and waits for the requests in
flight (up to ``shutdown_timeout`` s); the app then runs what is still queued and exits.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any, Sequence

from trimnet.errors import ConfigError, require
from trimnet.serve.config import ServeConfig

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve(sources: Sequence[str | Path], *, names: Sequence[str] | None = None, backend: str = "torch",
          backend_options: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 8000,
          config: ServeConfig | None = None, access_log: bool = False, shutdown_timeout: float = 30.0) -> None:
    """Serve run directories ``sources`` until interrupted; model names default to the directories' names."""
    require("fastapi", "serve")
    uvicorn = require("uvicorn", "serve")
    require("prometheus_client", "serve")
    from trimnet.serve.app import create_app
    from trimnet.serve.model import load_model

    config = config or ServeConfig()
    names = list(names or [])
    if names and len(names) != len(sources):
        raise ConfigError(f"{len(names)} --name for {len(sources)} run directories; give one name per run or none")
    models = [load_model(src, name=names[i] if names else None, backend=backend, **(backend_options or {}))
              for i, src in enumerate(sources)]
    app = create_app(models, config)
    sock = bind(host, port)
    if host not in LOOPBACK and config.token is None:
        log.warning("serving on %s without a token: anyone who can reach it can use it (set --token)", host)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
    log.info("listening on %s (models: %s)", url, ", ".join(m.name for m in models))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=access_log, lifespan="on",
                                           timeout_graceful_shutdown=max(1, int(shutdown_timeout)),
                                           timeout_keep_alive=30, backlog=2048))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for m in models:
            m.close()


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; port 0 picks a free one (read it back with ``getsockname``)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is out of range; pick one from 1 to 65535 (0: any free port)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it Nagle's algorithm holds each response body for the client's delayed ACK (~40 ms)
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port "
                          "or --host") from None
    return sock
