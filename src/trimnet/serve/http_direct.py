"""uvicorn's httptools protocol, with inference requests answered straight from the connection.

Through ASGI, an infer request passes uvicorn's task wrapper, its proxy-headers middleware, the
app and the gate; it reads its body as ASGI messages, and its answer leaves in two socket sends
(uvicorn sends the head and the body apart), every header checked against uvicorn's regular
expressions on the way. At 32 concurrent perf_analyzer clients that was a third of the event
loop's time per request (py-spy, benchmarks/serve_load.py), and the event loop is what limits a
batching server. Here an infer request keeps uvicorn's per-request state (its
``RequestResponseCycle``: keep-alive, pipelining, 100-continue, disconnects and graceful shutdown
stay uvicorn's), passes the same gate (token, requests in flight, metrics) and the same endpoint,
and its answer leaves in one send. Every other request goes through ASGI as before.
"""

from __future__ import annotations

import logging
import time

from trimnet.serve.gate import json_error
from trimnet.serve.routes_infer import infer_route

log = logging.getLogger(__name__)
# what the direct path reads and sets on uvicorn's RequestResponseCycle (checked, so that a uvicorn
# that changed them falls back to plain ASGI instead of failing at the first request)
CYCLE_FIELDS = ("scope", "transport", "flow", "default_headers", "message_event", "keep_alive", "disconnected",
                "response_started", "response_complete", "waiting_for_100_continue", "on_response", "receive",
                "access_log", "access_logger")


def direct_protocol(app):
    """The protocol class for ``uvicorn.Config(http=...)``, or None where httptools (or the uvicorn
    internals this builds on) is missing: uvicorn then picks its own, and every request goes through ASGI.

    ``app`` is ``create_app``'s: its ``gate`` and ``infer_endpoints`` answer the infer requests.
    """
    try:
        from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
    except ImportError:
        return None
    if not hasattr(HttpToolsProtocol, "_start_asgi_task") or not _has_cycle_fields(RequestResponseCycle):
        return None

    class DirectInferProtocol(HttpToolsProtocol):
        def _start_asgi_task(self, cycle, asgi_app) -> None:
            found = infer_route(cycle.scope) if asgi_app is self.app else None  # not uvicorn's own 503 app
            if found is None:
                return super()._start_asgi_task(cycle, asgi_app)
            task = self.loop.create_task(answer(app, cycle, *found, status_line=STATUS_LINE))
            task.add_done_callback(self.tasks.discard)
            self.tasks.add(task)

    return DirectInferProtocol


def _has_cycle_fields(cycle_class) -> bool:
    import inspect

    try:
        source = inspect.getsource(cycle_class)
    except (OSError, TypeError):  # no source to read: trust the version
        return True
    return all(f"self.{name}" in source or f"def {name}" in source for name in CYCLE_FIELDS)


async def answer(app, cycle, route: str, params: dict[str, str], *, status_line: dict[int, bytes]) -> None:
    """Answer one infer request on ``cycle``: the gate, then the endpoint, then one write."""
    scope = cycle.scope
    scope["path_params"] = params
    gate = app.gate
    start = time.perf_counter()
    status = 500
    try:
        refusal = await gate.refusal(scope)
        if refusal is not None:
            status, message, extra = refusal
            headers, data = json_error(message, extra)
        else:
            gate.enter()
            try:
                status, headers, data = await app.infer_endpoints[route].respond(scope, cycle.receive)
            finally:
                gate.leave()
        await write(cycle, status, headers, data, status_line)
    except Exception as exc:  # a bug: logged with its traceback, answered 500 as uvicorn would
        log.error("unhandled error on %s", scope.get("path"), exc_info=exc)
        status = 500
        if not cycle.response_started:
            await write(cycle, 500, *json_error("internal error; see the server log"), status_line)
        else:
            cycle.transport.close()
    finally:
        cycle.on_response = _nothing  # as uvicorn does: the cycle no longer holds the protocol
        gate.metrics.request(route, "POST", status, time.perf_counter() - start)


async def write(cycle, status: int, headers: list[tuple[bytes, bytes]], data: bytes,
                status_line: dict[int, bytes]) -> None:
    """The whole response in one send, then uvicorn's bookkeeping of a finished response."""
    if cycle.flow.write_paused and not cycle.disconnected:
        await cycle.flow.drain()
    if cycle.disconnected or cycle.response_complete:
        return
    cycle.response_started = True
    cycle.waiting_for_100_continue = False
    parts = [status_line[status]]
    for name, value in (*cycle.default_headers, *headers):
        if name == b"connection" and value == b"close":
            cycle.keep_alive = False  # as uvicorn does for an app's connection: close (written once, below)
            continue
        parts += [name, b": ", value, b"\r\n"]
    if not cycle.keep_alive:
        parts.append(b"connection: close\r\n")
    parts += [b"\r\n", data]
    cycle.transport.write(b"".join(parts))
    cycle.response_complete = True
    cycle.message_event.set()
    if cycle.access_log:
        scope = cycle.scope
        client = scope.get("client")
        cycle.access_logger.info('%s - "%s %s HTTP/%s" %d', "%s:%d" % tuple(client) if client else "-",
                                 scope["method"], scope["path"], scope["http_version"], status)
    if not cycle.keep_alive:
        cycle.transport.close()
    cycle.on_response()


def _nothing() -> None:
    pass
