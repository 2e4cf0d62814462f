"""The timing loops: warm-up until stable, then a count- and time-bounded measurement.

Each call is timed on its own with ``perf_counter_ns``; nothing is dropped, so outliers
show in p99 and max. The loops do as little as possible between the two clock reads.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from trimnet.bench.config import BenchConfig

Fn = Callable[[], object]


@dataclass(frozen=True)
class Warmup:
    runs: int
    seconds: float
    stable: bool
    window: int  # runs per compared median (shrinks for slow models to fit warmup_max_s)
    change: float | None  # relative change between the last two window medians

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Stats:
    """Latency statistics in milliseconds over every measured call."""

    p50: float
    p90: float
    p99: float
    min: float
    mean: float
    max: float
    std: float
    iterations: int
    seconds: float  # total time measured

    @classmethod
    def of(cls, times_ns: np.ndarray | list[int]) -> "Stats":
        ms = np.asarray(times_ns, dtype=np.float64) / 1e6
        p50, p90, p99 = np.percentile(ms, [50, 90, 99])
        return cls(p50=float(p50), p90=float(p90), p99=float(p99), min=float(ms.min()), mean=float(ms.mean()),
                   max=float(ms.max()), std=float(ms.std()), iterations=int(ms.size), seconds=float(ms.sum()) / 1e3)

    def latency_ms(self) -> dict:
        return {k: getattr(self, k) for k in ("p50", "p90", "p99", "min", "mean", "max", "std")}


def timed(fn: Fn) -> int:
    t0 = time.perf_counter_ns()
    fn()
    return time.perf_counter_ns() - t0


def warm_up(fn: Fn, cfg: BenchConfig) -> Warmup:
    """Run ``fn`` until the medians of two consecutive windows agree within ``cfg.warmup_tolerance``."""
    times: list[int] = []
    start = time.perf_counter_ns()
    budget_ns = cfg.warmup_max_s * 1e9
    window, change = cfg.warmup_window, None
    while len(times) < cfg.warmup_max_iters:
        times.append(timed(fn))
        elapsed = time.perf_counter_ns() - start
        # a slow model gets smaller windows so that two of them fit in half the budget
        typical = float(np.median(times))
        window = int(max(2, min(cfg.warmup_window, budget_ns / (4 * typical)))) if typical > 0 else cfg.warmup_window
        if len(times) >= 2 * window:
            before = float(np.median(times[-2 * window:-window]))
            after = float(np.median(times[-window:]))
            change = abs(after - before) / before if before > 0 else 0.0
            if change < cfg.warmup_tolerance:
                return Warmup(len(times), elapsed / 1e9, True, window, change)
        if elapsed >= budget_ns:
            break
    return Warmup(len(times), (time.perf_counter_ns() - start) / 1e9, False, window, change)


def measure(fn: Fn, cfg: BenchConfig) -> list[int]:
    """Per-call times (ns) of ``fn`` until ``min_iters`` and ``min_time_s``, capped by the maxima."""
    clock = time.perf_counter_ns
    times: list[int] = []
    append = times.append
    min_ns, max_ns = cfg.min_time_s * 1e9, cfg.max_time_s * 1e9
    min_iters, max_iters = cfg.min_iters, cfg.max_iters
    start = clock()
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        append(t1 - t0)
        n, elapsed = len(times), t1 - start
        if (n >= min_iters and elapsed >= min_ns) or n >= max_iters or elapsed >= max_ns:
            return times


def measure_pairs(fn_a: Fn, fn_b: Fn, cfg: BenchConfig) -> tuple[list[int], list[int]]:
    """Interleaved timing: pair i is (A_i, B_i), taken back to back.

    The order within a pair alternates (A B, B A, A B, ...): whichever call goes second finds
    caches and a runtime's worker threads warm from the first, and neither side should
    always get that.
    """
    clock = time.perf_counter_ns
    a: list[int] = []
    b: list[int] = []
    min_ns, max_ns = cfg.min_time_s * 1e9, cfg.max_time_s * 1e9
    start = clock()
    while True:
        first, second = (fn_a, fn_b) if len(a) % 2 == 0 else (fn_b, fn_a)
        t0 = clock()
        first()
        t1 = clock()
        second()
        t2 = clock()
        if len(a) % 2 == 0:
            a.append(t1 - t0)
            b.append(t2 - t1)
        else:
            b.append(t1 - t0)
            a.append(t2 - t1)
        n, elapsed = len(a), t2 - start
        if (n >= cfg.min_iters and elapsed >= min_ns) or n >= cfg.max_iters or elapsed >= max_ns:
            return a, b
