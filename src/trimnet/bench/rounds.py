"""Several runners timed side by side: rounds in a rotating order, so load that comes and goes
on a shared machine hits all of them alike.

``rounds(runners, x, seconds)`` returns, per runner, the median call time (ms) of each round;
the median over rounds is the figure to report, and per-round ratios are paired samples.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Sequence


def rounds(runners: Sequence[Any], x: Any, seconds: float, min_rounds: int = 5, slice_s: float = 0.02,
           max_calls: int = 200) -> list[list[float]]:
    """Time ``runners`` (``prepare(x)`` / ``call(prepared)``) on ``x`` in interleaved rounds.

    Each round runs every runner for about ``slice_s`` (at least one timed call), starting
    from a different runner each round; it stops after ``seconds`` once ``min_rounds`` are
    done. Each slice starts with one untimed call: the runner before it may leave worker
    threads spinning (onnxruntime, OpenVINO), which on a 2-core machine slows the first call
    that follows by up to 2x whichever runtime it is.
    """
    prepared = [r.prepare(x) for r in runners]
    calls = []
    for r, p in zip(runners, prepared):
        for _ in range(3):
            r.call(p)  # warm: lazy allocation, kernel selection
        t0 = time.perf_counter()
        r.call(p)
        calls.append(max(1, min(max_calls, int(slice_s / max(time.perf_counter() - t0, 1e-6)))))
    times: list[list[float]] = [[] for _ in runners]
    start, k, n = time.perf_counter(), 0, len(runners)
    while k < min_rounds or time.perf_counter() - start < seconds:
        for i in [(k + j) % n for j in range(n)]:
            call, p, ts = runners[i].call, prepared[i], []
            call(p)  # settle
            for _ in range(calls[i]):
                t0 = time.perf_counter_ns()
                call(p)
                ts.append(time.perf_counter_ns() - t0)
            times[i].append(statistics.median(ts) / 1e6)
        k += 1
    return times
