"""How long and how carefully to measure: one typed, versioned config."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from trimnet.errors import ConfigError

BENCH_CONFIG_VERSION = 1


@dataclass(frozen=True)
class BenchConfig:
    """Warm-up until stable, then a loop bounded by count and time.

    Warm-up ends when the medians of the last two windows of ``warmup_window`` runs differ
    by less than ``warmup_tolerance`` (relative), or at ``warmup_max_s`` / ``warmup_max_iters``
    (then the result says ``stable: false``). The measured loop runs until it has both
    ``min_iters`` runs and ``min_time_s`` seconds, and stops at ``max_iters`` or ``max_time_s``.
    A loop whose repeats spread wider than ``max_spread`` ((p90 - p50) / p50) is timed again,
    up to ``retimes`` times, and the steadiest attempt is kept; the result records it.
    """

    version: int = BENCH_CONFIG_VERSION
    threads: int | None = None  # None: the cores other work leaves free (measured); pinned for every backend
    warmup_window: int = 5
    warmup_tolerance: float = 0.05
    warmup_max_s: float = 5.0
    warmup_max_iters: int = 1000
    min_iters: int = 10
    min_time_s: float = 1.0
    max_iters: int = 100_000
    max_time_s: float = 10.0
    max_spread: float = 0.5
    retimes: int = 2
    seed: int = 0

    def validate(self) -> "BenchConfig":
        if self.version != BENCH_CONFIG_VERSION:
            raise ConfigError(f"bench config version {self.version} is not supported; this trimnet reads "
                              f"version {BENCH_CONFIG_VERSION}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"bench.threads must be >= 1; got {self.threads}")
        if self.warmup_window < 2:
            raise ConfigError(f"bench.warmup_window must be >= 2; got {self.warmup_window}")
        if not 0.0 < self.warmup_tolerance < 1.0:
            raise ConfigError(f"bench.warmup_tolerance must be in (0, 1); got {self.warmup_tolerance}")
        if self.warmup_max_s < 0 or self.warmup_max_iters < 0:
            raise ConfigError("bench.warmup_max_s and bench.warmup_max_iters must be >= 0")
        if self.min_iters < 1 or self.max_iters < self.min_iters:
            raise ConfigError(f"bench needs 1 <= min_iters <= max_iters; got {self.min_iters} and {self.max_iters}")
        if self.min_time_s < 0 or self.max_time_s <= 0 or self.max_time_s < self.min_time_s:
            raise ConfigError(f"bench needs 0 <= min_time_s <= max_time_s and max_time_s > 0; "
                              f"got {self.min_time_s} and {self.max_time_s}")
        if self.max_spread <= 0 or self.retimes < 0:
            raise ConfigError(f"bench needs max_spread > 0 and retimes >= 0; got {self.max_spread} and {self.retimes}")
        return self

    def replace(self, **changes) -> "BenchConfig":
        return dataclasses.replace(self, **changes).validate()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
