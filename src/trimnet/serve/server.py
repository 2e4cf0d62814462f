"""Run the app under uvicorn: bind (127.0.0.1 unless told otherwise), serve, shut down gracefully.

Shutdown (SIGINT or SIGTERM) drains first: the listeners stay open, readiness answers 503
and new requests 503 + Retry-After, while what is queued runs (up to ``shutdown_timeout``
s; anything still queued after it is refused with 503). Then uvicorn stops accepting, closes
the connections and exits. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import logging
import socket
import sys
from pathlib import Path
from typing import Any, Sequence

from trimnet.errors import ConfigError, require
from trimnet.serve.config import ServeConfig

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "::1", "localhost")
DEFAULT_GRPC_PORT = 8001  # Triton's
SWITCH_INTERVAL_S = 0.0002


def draining_server(uvicorn):
    """A uvicorn.Server whose first exit signal drains the service before uvicorn stops accepting."""

    class DrainingServer(uvicorn.Server):
        def __init__(self, config, *, service, drain_timeout: float):
            super().__init__(config)
            self.service = service
            self.drain_timeout = drain_timeout
            self.drain_task = None

        def handle_exit(self, sig, frame) -> None:
            if self.service.draining or self.should_exit:  # a second signal: stop now
                return super().handle_exit(sig, frame)
            self._captured_signals.append(sig)
            self.service.draining = True  # from here on: readiness 503, new requests 503

        async def on_tick(self, counter: int) -> bool:
            if self.service.draining and self.drain_task is None and not self.should_exit:
                self.drain_task = asyncio.ensure_future(self.service.drain(self.drain_timeout))
            if self.drain_task is not None and self.drain_task.done():
                self.should_exit = True
            return await super().on_tick(counter)

    return DrainingServer


def serve(sources: Sequence[str | Path], *, names: Sequence[str] | None = None, backend: str = "torch",
          backend_options: dict[str, Any] | None = None, host: str = "127.0.0.1", port: int = 8000,
          config: ServeConfig | None = None, access_log: bool = False, shutdown_timeout: float = 30.0,
          grpc_port: int | None = DEFAULT_GRPC_PORT) -> None:
    """Serve run directories ``sources`` until interrupted; model names default to the directories' names.

    ``grpc_port`` also serves the gRPC API there (0: any free port; None: no gRPC).
    """
    require("fastapi", "serve")
    uvicorn = require("uvicorn", "serve")
    require("prometheus_client", "serve")
    from trimnet.serve.app import create_app
    from trimnet.serve.model import load_model

    config = config or ServeConfig()
    # The model runs in a worker thread, which must take the GIL back from the event loop after
    # every call into the runtime. A busy loop gives it up only every switch interval (5 ms by
    # default), so under many connections a 1 ms batch took 60 ms (benchmarks/serve_load.py);
    # a shorter interval lets the worker back in at once.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    names = list(names or [])
    if names and len(names) != len(sources):
        raise ConfigError(f"{len(names)} --name for {len(sources)} run directories; give one name per run or none")
    if not backend.startswith("torch"):
        # torch only takes the softmax here; its pool of one thread per core, woken for a (30, 10) softmax,
        # took 20 ms a batch on a busy machine against 15 us on one thread (benchmarks/serve_load.py)
        import torch

        torch.set_num_threads(1)
    models = [load_model(src, name=names[i] if names else None, backend=backend, **(backend_options or {}))
              for i, src in enumerate(sources)]
    grpc_address = None
    if grpc_port == DEFAULT_GRPC_PORT and importlib.util.find_spec("grpc") is None:
        log.warning("serving HTTP only: gRPC needs grpcio (pip install 'trimnet[grpc]')")
        grpc_port = None
    if grpc_port is not None:
        if not 0 <= grpc_port <= 65535:
            raise ConfigError(f"--grpc-port {grpc_port} is out of range; pick one from 1 to 65535 (0: any free port)")
        require("grpc", "grpc")
        grpc_address = f"[{host}]:{grpc_port}" if ":" in host else f"{host}:{grpc_port}"
    app = create_app(models, config, grpc_address=grpc_address, shutdown_timeout=shutdown_timeout)
    # torch, the runtimes and the models are hundreds of thousands of long-lived objects; left in the
    # collector's generations, every full collection walks them all, and with hundreds of requests in
    # flight those come often. Freezing them leaves the collector only the requests' own objects.
    gc.collect()
    gc.freeze()
    sock = bind(host, port)
    if host not in LOOPBACK and config.token is None:
        log.warning("serving on %s without a token: anyone who can reach it can use it (set --token)", host)
    url = f"http://{host if ':' not in host else f'[{host}]'}:{sock.getsockname()[1]}"
    log.info("listening on %s (models: %s)", url, ", ".join(m.name for m in models))
    from trimnet.serve.http_direct import direct_protocol

    server = draining_server(uvicorn)(
        uvicorn.Config(app, http=direct_protocol(app) or "auto", log_config=None, access_log=access_log,
                       lifespan="on", loop=event_loop(), timeout_graceful_shutdown=5, timeout_keep_alive=30, backlog=2048),
        service=app.state.service, drain_timeout=shutdown_timeout)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        for m in models:
            m.close()


def event_loop() -> str:
    """uvicorn's event loop: uvloop where installed (the ``serve`` extra has it), else asyncio's own.

    uvloop's sockets and callbacks are C: at 32 concurrent perf_analyzer clients, gRPC answered
    about 15 % more requests on it (benchmarks/serve_load.py), HTTP about the same.
    """
    return "uvloop" if importlib.util.find_spec("uvloop") is not None else "asyncio"


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
