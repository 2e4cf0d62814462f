"""Choosing among the measured candidates: the Pareto front of latency against accuracy, the
verdicts, and the winner: the fastest candidate within the budget, and never one slower than
the original."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trimnet.optimize.candidates import Candidate


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats on both cost (x, lower is better) and
    accuracy (y, higher is better), sorted by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], float("-inf")
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def mark(candidates: list["Candidate"], original: "Candidate", floor: float) -> None:
    """Verdicts, the Pareto front (latency vs accuracy) and the winner."""
    timed = [c for c in candidates if c.latency_ms is not None and c.val_accuracy is not None]
    for i in pareto_front([(c.latency_ms, c.val_accuracy) for c in timed]):
        timed[i].pareto = True
    ok = [c for c in timed if c.accepted and not c.original]
    best = min(ok, key=lambda c: c.latency_ms, default=None)
    if best is None or best.latency_ms >= original.latency_ms:
        best = original  # never hand back something slower than what came in
    best.winner = True
    for c in candidates:
        if c.verdict:
            continue
        if c.winner:
            c.verdict = "winner" if not c.original else "kept: nothing faster stayed within the budget"
        elif c.original:
            c.verdict = "baseline"
        elif c.val_accuracy is not None and c.val_accuracy < floor:
            c.verdict = "over the accuracy budget"
        elif c.latency_ms is not None and best.latency_ms is not None:
            # like with like: a finalist against the final round, the others against the sweep
            ref = best.latency_ms if c.sweep_latency_ms is not None else (best.sweep_latency_ms or best.latency_ms)
            c.verdict = f"{c.latency_ms / ref:.2f}x the winner's latency"
