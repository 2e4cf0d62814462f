"""Other work on the machine, measured: the cores other processes use, and how many threads fit.

A timing taken while other processes compete for the same cores is inflated, and by how
much changes from one call to the next. Two signals tell it apart: the CPU time other
processes used while the timing ran (from ``/proc/stat``, minus this process's own time),
and the spread between repeats of the same call. ``Watch`` records both around a block;
``free_cores`` and ``auto_threads`` pick a thread count that does not oversubscribe a
loaded machine (2 threads on a 2-core machine at load 4 run slower than 1, often 100x).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from trimnet.bench.env import load_average

# relative spread between repeats ((p90 - p50) / p50) past which a timing is taken again
MAX_SPREAD = 0.5
# other processes using more than the cores our threads leave, plus this share of one core, while we
# measure count as interference (two processes that both want a core slow each other down)
BUSY_CORES = 0.25
# /proc/stat counts in clock ticks (10 ms): a shorter window than this reads as noise, so it is extended
MIN_WINDOW_S = 0.2


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@dataclass(frozen=True)
class CpuSample:
    """Machine-wide busy CPU seconds and this process's own, at one instant."""

    wall: float
    busy_s: float | None  # None where the OS has no /proc/stat
    own_s: float

    @classmethod
    def now(cls) -> "CpuSample":
        t = os.times()
        return cls(wall=time.perf_counter(), busy_s=_machine_busy_seconds(), own_s=t.user + t.system)


def _machine_busy_seconds() -> float | None:
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    if not first or first[0] != "cpu":
        return None
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait are busy
    ticks = [int(v) for v in first[1:9]]
    busy = sum(ticks) - ticks[3] - ticks[4]
    return busy / os.sysconf("SC_CLK_TCK")


def others_cores(a: CpuSample, b: CpuSample) -> float | None:
    """Mean number of cores other processes kept busy between samples ``a`` and ``b``."""
    if a.busy_s is None or b.busy_s is None or b.wall - a.wall <= 0:
        return None
    others = (b.busy_s - a.busy_s) - (b.own_s - a.own_s)
    return max(0.0, others / (b.wall - a.wall))


def free_cores(seconds: float = 0.25) -> float:
    """Cores left idle by other processes over the next ``seconds`` (this process idles meanwhile)."""
    a = CpuSample.now()
    time.sleep(seconds)
    used = others_cores(a, CpuSample.now())
    cores = usable_cores()
    if used is None:  # no /proc/stat: the run-queue average is the best guess
        load = load_average()
        used = load[0] if load else 0.0
    return max(0.0, cores - used)


def auto_threads(seconds: float = 0.25) -> int:
    """Threads for a measurement: the free cores, rounded, at least 1 and at most the usable cores."""
    return max(1, min(usable_cores(), int(free_cores(seconds) + 0.5)))


class Watch:
    """Load average and other processes' CPU use over a block: ``with Watch() as w: ...; w.to_dict()``."""

    def __enter__(self) -> "Watch":
        self.load_before = load_average()
        self._start = CpuSample.now()
        self.others = None
        return self

    def __exit__(self, *exc) -> None:
        short = MIN_WINDOW_S - (time.perf_counter() - self._start.wall)
        if short > 0:
            time.sleep(short)
        self.others = others_cores(self._start, CpuSample.now())
        self.load_after = load_average()

    def busy(self, threads: int) -> bool:
        """Whether other work competed for the cores ``threads`` threads need."""
        cores = usable_cores()
        if self.others is not None:
            return self.others > max(BUSY_CORES, cores - threads + BUSY_CORES)
        loads = [x[0] for x in (self.load_before, self.load_after) if x]
        return bool(loads) and max(loads) > cores

    def to_dict(self, threads: int) -> dict:
        return {"load_before": self.load_before, "load_after": self.load_after,
                "others_cores": None if self.others is None else round(self.others, 2),
                "cores": usable_cores(), "threads": threads, "busy": self.busy(threads)}


def spread(p50: float, p90: float) -> float:
    """(p90 - p50) / p50: how far the slow tenth of repeats sits above the median."""
    return (p90 - p50) / p50 if p50 > 0 else 0.0
