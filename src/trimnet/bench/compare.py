"""``compare``: two models or two backends measured interleaved, in pairs, on the same inputs.

Load on a shared machine drifts over seconds; two measurements taken back to back see
the same load, so the ratio within each pair cancels most of it. The result is the median
of the per-pair ratios (B's latency over A's), with its interquartile range. Within a pair
the order alternates (A B, B A, ...) so neither side always runs second, after the other
warmed caches and worker threads.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from trimnet.bench.config import BenchConfig
from trimnet.bench.env import describe_environment, load_average, pinned_threads
from trimnet.bench.interference import auto_threads
from trimnet.bench.harness import BackendSpec, check_batch_sizes, open_runner, shared_export, why_not_runnable
from trimnet.bench.report import CompareResult, PairResult
from trimnet.bench.source import resolve_source
from trimnet.bench.timing import Stats, measure_pairs, timed, warm_up
from trimnet.runtime.errors import BackendUnavailableError


def compare(
    model_a: Any,
    model_b: Any = None,
    example_inputs: torch.Tensor | None = None,
    *,
    backend_a: str | BackendSpec = "torch",
    backend_b: str | BackendSpec | None = None,
    batch_sizes: Sequence[int] | None = None,
    config: BenchConfig | None = None,
) -> CompareResult:
    """Measure A = (``model_a``, ``backend_a``) against B = (``model_b``, ``backend_b``) interleaved.

    ``model_b`` defaults to ``model_a`` (compare two backends); ``backend_b`` defaults to
    ``backend_a`` (compare two models). Ratios are B's latency over A's: 0.5 = B twice as fast.
    """
    cfg = (config or BenchConfig()).validate()
    spec_a = BackendSpec.parse(backend_a)
    spec_b = BackendSpec.parse(backend_b if backend_b is not None else backend_a)
    src_a = resolve_source(model_a, example_inputs, seed=cfg.seed)
    src_b = src_a if model_b is None else resolve_source(model_b, example_inputs, seed=cfg.seed)
    for src, spec in ((src_a, spec_a), (src_b, spec_b)):
        why = why_not_runnable(src, spec)
        if why is not None:
            raise BackendUnavailableError(f"cannot compare on {spec.label}: {why}")
    sizes = check_batch_sizes(batch_sizes, len(src_a.example))
    threads = cfg.threads or auto_threads()
    results = []
    environment = describe_environment(threads)
    with pinned_threads(threads), tempfile.TemporaryDirectory(prefix="trimnet-compare-") as tmp:
        exported_a = shared_export(src_a, [spec_a, spec_b], Path(tmp) / "a")
        exported_b = exported_a if src_b is src_a else shared_export(src_b, [spec_b], Path(tmp) / "b")
        with open_runner(src_a, spec_a, threads, exported_a) as run_a, \
                open_runner(src_b, spec_b, threads, exported_b) as run_b:
            for batch in sizes:
                results.append(_compare_batch(run_a, run_b, src_a.inputs(batch), src_b.inputs(batch), cfg))
            sides = [{"label": f"{src.name} on {spec.label}", "model": src.describe(None), "backend": spec.label,
                      "precision": runner.precision, "runner": runner.describe()}
                     for src, spec, runner in ((src_a, spec_a, run_a), (src_b, spec_b, run_b))]
    environment["load_average_after"] = load_average()
    return CompareResult(a=sides[0], b=sides[1], config=cfg.to_dict(), environment=environment, results=results)


def _compare_batch(runner_a, runner_b, xa: np.ndarray, xb: np.ndarray, cfg: BenchConfig) -> PairResult:
    call_a, prepared_a = runner_a.call, runner_a.prepare(xa)
    call_b, prepared_b = runner_b.call, runner_b.prepare(xb)
    timed(lambda: call_a(prepared_a))
    timed(lambda: call_b(prepared_b))
    warm_up(lambda: (call_a(prepared_a), call_b(prepared_b)), cfg)
    ta, tb = measure_pairs(lambda: call_a(prepared_a), lambda: call_b(prepared_b), cfg)
    ratios = np.asarray(tb, dtype=np.float64) / np.maximum(np.asarray(ta, dtype=np.float64), 1.0)
    p25, p50, p75 = np.percentile(ratios, [25, 50, 75])
    return PairResult(batch=len(xa), pairs=len(ratios), ratio=float(p50), ratio_p25=float(p25), ratio_p75=float(p75),
                      a_latency_ms=Stats.of(ta).latency_ms(), b_latency_ms=Stats.of(tb).latency_ms())
