"""The end of the search: finalists timed side by side (the winner is then chosen in
``select.py``), and the "never slower than the input" check that any later measurement can
repeat (``confirm``).

Each candidate of the sweep is timed alone, one after another, so load that comes and goes
on a shared machine can swap two close candidates, or make a candidate look faster than the
original when it is not. Timing in interleaved rounds (``bench.rounds``) puts the same load
on every runner of a round; the figures of a round are compared with each other only.
"""

from __future__ import annotations

import statistics
from typing import TYPE_CHECKING, Callable

import torch

from trimnet.bench.interference import Watch
from trimnet.bench.rounds import rounds

if TYPE_CHECKING:
    from trimnet.optimize.candidates import Candidate
    from trimnet.optimize.result import OptimizeResult

FINALISTS = 6  # at most this many accepted candidates are timed again, side by side with the original
FINALIST_SPREAD = 3.0  # ... those within this factor of the fastest sweep latency


def final_round(candidates: list["Candidate"], original: "Candidate", open_runner: Callable[["Candidate"], object],
                example: torch.Tensor, seconds: float, threads: int, say: Callable[[str], None]) -> None:
    """Time the original and the fastest accepted candidates again, interleaved in rounds.

    The finalists' latencies become the median of per-round medians measured side by side,
    which is what the winner is then chosen on (and compared with the original on).
    """
    ok = sorted((c for c in candidates if c.accepted and not c.original and c.latency_ms is not None),
                key=lambda c: c.latency_ms)
    if not ok:
        return
    ok = [c for c in ok if c.latency_ms <= FINALIST_SPREAD * ok[0].latency_ms][:FINALISTS]
    finalists = [original, *ok]
    runners = []
    try:
        for c in finalists:
            runners.append(open_runner(c))
        with Watch() as watch:
            timed = rounds(runners, example.numpy(), seconds=max(0.5, seconds) * 1.5 * len(finalists))
    finally:
        for r in runners:
            r.close()
    busy = watch.busy(threads)
    for c, times in zip(finalists, timed):
        c.sweep_latency_ms = c.latency_ms
        c.latency_ms = statistics.median(times)
        c.flagged = c.flagged or busy
    say("finalists timed side by side: " + "; ".join(f"{c.description} {c.latency_ms:.3f} ms" for c in finalists)
        + (f" (busy: {watch.others:.1f} cores used by other work)" if busy and watch.others is not None else ""))


def confirm(result: "OptimizeResult", seconds: float = 2.0, threads: int | None = None) -> dict:
    """Time the winner as it ships against the original, side by side on the target; keep the
    original if the winner is not faster there. Returns (and stores in ``result.confirmation``)
    both medians, the rounds and whether the machine was busy meanwhile."""
    from trimnet.runtime import load_runner

    threads = threads or result.threads
    if result.best.original or result.original_model is None:
        info = {"confirmed": True, "kept_original": result.best.original, "original_ms": result.original.latency_ms,
                "winner_ms": result.best.latency_ms, "rounds": 0, "busy": False, "flagged": result.original.flagged}
        result.confirmation = info
        return info
    example = result._example()
    runners = []
    try:
        runners.append(load_runner(result.original.backend, result.original_model, example, threads=threads))
        runners.append(result.runner(threads))
        with Watch() as watch:
            times = rounds(runners, example.numpy(), seconds=seconds)
    finally:
        for r in runners:
            r.close()
    original_ms, winner_ms = statistics.median(times[0]), statistics.median(times[1])
    busy = watch.busy(threads or 1)
    info = {"original_ms": original_ms, "winner_ms": winner_ms, "speedup": original_ms / winner_ms,
            "rounds": len(times[0]), "busy": busy, "others_cores": watch.others, "load": watch.load_after,
            "threads": threads, "flagged": busy, "confirmed": winner_ms < original_ms, "kept_original": False}
    if not info["confirmed"]:
        result.keep_original(f"slower than the original when timed again side by side "
                             f"({winner_ms:.4f} against {original_ms:.4f} ms)")
        info["kept_original"] = True
    result.confirmation = info
    return info
