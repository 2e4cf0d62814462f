"""The server's settings: batching, limits, authentication. One small dataclass, checked on creation;
the ``serve`` section of a config file (``trimnet serve -c``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from trimnet.errors import ConfigError

TOKEN_ENV = "TRIMNET_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeConfig:
    """How requests are batched, bounded and authenticated.

    Memory is bounded by ``max_inflight * max_body_bytes`` for requests being read and
    ``max_queue`` samples waiting for the model.
    """

    max_batch: int = 64  # samples per model call
    # how long the first queued sample waits for others to join its batch. 0 (Triton's default): a batch is
    # whatever queued while the model ran the last one; with closed-loop clients a wait only delays everyone
    # (benchmarks/serve_load.py: 2 ms gave a fifth of the throughput at 1 client and 0.58x at 8)
    max_delay_ms: float = 0.0
    max_queue: int = 1024  # samples waiting for the model; past it, 503 with Retry-After
    max_inflight: int = 256  # HTTP requests being handled at once; past it, 503 with Retry-After
    max_body_bytes: int = 8 * 1024 * 1024  # request body limit; past it, 413
    retry_after_s: int = 1  # the Retry-After header of a 503
    # a 503 for capacity (max_inflight or max_queue) is answered after this pause: a client that retries
    # at once, ignoring Retry-After, then costs the server a refusal per pause, not per round trip
    refusal_delay_ms: float = 100.0
    normalize: bool = True  # apply each artifact's training normalization (per request: parameters.normalize)
    top_k: int = 1  # classes returned per sample unless a request asks (parameters.top_k)
    token: str | None = None  # bearer token every route but /v2/health/* needs; None: no authentication
    version: int = 1

    def __post_init__(self) -> None:
        positive = {"max_batch": self.max_batch, "max_queue": self.max_queue, "max_inflight": self.max_inflight,
                    "max_body_bytes": self.max_body_bytes, "top_k": self.top_k}
        for key, value in positive.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"serve: {key} must be a positive integer, got {value!r}")
        if not isinstance(self.max_delay_ms, (int, float)) or not 0 <= self.max_delay_ms <= 10_000:
            raise ConfigError(f"serve: max_delay_ms must be between 0 and 10000, got {self.max_delay_ms!r}")
        if self.max_queue < self.max_batch:
            raise ConfigError(f"serve: max_queue ({self.max_queue}) must hold at least one batch "
                              f"(max_batch {self.max_batch}); raise --max-queue")
        if not isinstance(self.refusal_delay_ms, (int, float)) or isinstance(self.refusal_delay_ms, bool) \
                or not 0 <= self.refusal_delay_ms <= 10_000:
            raise ConfigError(f"serve: refusal_delay_ms must be between 0 and 10000, got {self.refusal_delay_ms!r}")
        if not isinstance(self.retry_after_s, int) or self.retry_after_s < 0:
            raise ConfigError(f"serve: retry_after_s must be a non-negative integer, got {self.retry_after_s!r}")
        if self.token is not None and (not isinstance(self.token, str) or not self.token.strip()):
            raise ConfigError(f"serve: the token must be a non-empty string; unset {TOKEN_ENV} or pass a real one")

    def validate(self) -> None:
        """Checked on creation already; the config loaders (``trimnet serve -c``) call this as for every config."""

    @property
    def max_delay_s(self) -> float:
        return self.max_delay_ms / 1000.0

    @property
    def refusal_delay_s(self) -> float:
        return self.refusal_delay_ms / 1000.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["token"] = "***" if self.token else None  # never echo a secret
        return out
