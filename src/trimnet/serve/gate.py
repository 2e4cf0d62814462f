"""The gate every HTTP request passes: counted and timed, the token checked, requests in flight bounded."""

import asyncio
import hmac
import json
import time

from trimnet.serve.metrics import Metrics
from trimnet.serve.protocol import error_body

OPEN_PATHS = frozenset({"/v2/health/live", "/v2/health/ready"})
ROUTE_KEY = "trimnet.route"  # where InferEndpoint names its route for the metrics (Starlette routes do not)
CLOSE = (b"connection", b"close")
# A request refused before its body is read is answered at once, its body unread. An unread body
# of up to this many bytes is read and dropped by the server as it comes (uvicorn drops the body of
# an answered request), so the connection carries the client's next request; a larger one, one of
# unknown size (chunked) or one the client holds back until told to go on (Expect: 100-continue)
# closes the connection after the answer instead of being read.
DISCARD_LIMIT = 64 * 1024


class Gate:
    """Plain ASGI middleware: counts and times every request, checks the token, bounds requests in flight."""

    def __init__(self, app, *, metrics: Metrics, token: str | None, max_inflight: int, retry_after: int,
                 refusal_delay: float = 0.0):
        self.app = app
        self.metrics = metrics
        self.token = token.encode() if token else None
        self.max_inflight = max_inflight
        self.retry_after = str(retry_after).encode()
        self.refusal_delay = refusal_delay  # seconds before a 503 for max_inflight (see ServeConfig)
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
            refusal = await self.refusal(scope)
            if refusal is not None:
                await _respond(send_status, *refusal)
            else:
                self.enter()
                try:
                    await self.app(scope, receive, send_status)
                finally:
                    self.leave()
        finally:
            route = getattr(scope.get("route"), "path", None) or scope.get(ROUTE_KEY, "other")
            self.metrics.request(route, scope.get("method", ""), status, time.perf_counter() - start)

    async def refusal(self, scope) -> tuple[int, str, list[tuple[bytes, bytes]]] | None:
        """(status, message, headers) to refuse ``scope`` with, or None to let it in.

        A 503 for capacity comes after ``refusal_delay``, so clients that retry at once cannot swamp the server.
        """
        probe = scope["path"] in OPEN_PATHS  # health probes: no token, and never refused as overload
        if self.token is not None and not probe and not self._authorized(scope):
            return 401, "missing or wrong bearer token (Authorization: Bearer TOKEN)", \
                [(b"www-authenticate", b"Bearer"), *unread_body_headers(scope)]
        if self.inflight >= self.max_inflight and not probe:
            if self.refusal_delay > 0:
                await asyncio.sleep(self.refusal_delay)
            return 503, f"the server is handling {self.inflight} requests, its limit", \
                [(b"retry-after", self.retry_after), *unread_body_headers(scope)]
        return None

    def enter(self) -> None:
        self.inflight += 1
        self.metrics.inflight.inc()

    def leave(self) -> None:
        self.inflight -= 1
        self.metrics.inflight.dec()

    def _authorized(self, scope) -> bool:
        for key, value in scope["headers"]:
            if key == b"authorization":
                scheme, _, credentials = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(credentials.strip(), self.token)
        return False


def unread_body_headers(scope) -> list[tuple[bytes, bytes]]:
    """``[connection: close]`` when a request's unread body should close its connection (see DISCARD_LIMIT)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            if not value.isdigit() or int(value) > DISCARD_LIMIT:
                return [CLOSE]
        elif key == b"transfer-encoding" or (key == b"expect" and value.lower() == b"100-continue"):
            return [CLOSE]
    return []


def json_error(message: str, extra: list[tuple[bytes, bytes]] = ()) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """(headers, body) of an ``{"error": message}`` answer, with ``extra`` headers."""
    body = json.dumps(error_body(message)).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *extra], body


async def _respond(send, status: int, message: str, extra: list[tuple[bytes, bytes]]) -> None:
    headers, body = json_error(message, extra)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
