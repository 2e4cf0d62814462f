"""Measuring one candidate: its validation score as the runtime runs it, its latency at the
target batch on its backend, and its size. A lower precision is made by ``quantize``, scored
on the validation split; the test split is scored once, for the winner (``score_on_test``)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from trimnet.optimize.candidates import Candidate, CandidateKey
from trimnet.optimize.progress import quiet

if TYPE_CHECKING:
    from trimnet.optimize.context import SearchContext
    from trimnet.optimize.result import OptimizeResult
    from trimnet.optimize.search import OptimizeConfig

PASSES = ("trimnet.optimize.quantize", "trimnet.optimize.fuse")  # whose INFO lines a measurement hushes


@dataclass
class Skip:
    """Why a precision on a backend is not a candidate."""
    why: str
    backend_wide: bool  # True: no model would run lower on this backend here (no tool, no bf16 in this CPU)


def measure(ctx: "SearchContext", model: nn.Module, key: CandidateKey) -> Candidate | Skip:
    """``model`` run as ``key`` says, measured (or as an earlier run measured it)."""
    hit = ctx.cache.get(key, ctx.cfg, model)
    if hit is not None:
        return hit
    c = _measure_fp32(ctx, model, key) if key.precision == "fp32" else _measure_lowp(ctx, model, key)
    if isinstance(c, Candidate):
        ctx.cache.put(key, ctx.cfg, model, c)
    return c


def _measure_fp32(ctx: "SearchContext", model: nn.Module, key: CandidateKey) -> Candidate:
    from trimnet.runtime import load_runner

    t0 = time.perf_counter()
    runner = load_runner(key.backend, model, ctx.example, threads=ctx.cfg.threads)
    try:
        acc = runner_score(runner.run, ctx.x_val, ctx.y_val, ctx.task)
        timing = latency(runner, ctx.example, key.backend, ctx.cfg)
    finally:
        runner.close()
    return Candidate.of(key, val_accuracy=acc, **size(model, ctx.example), **timing,
                        seconds=time.perf_counter() - t0)


def _measure_lowp(ctx: "SearchContext", model: nn.Module, key: CandidateKey) -> Candidate | Skip:
    from trimnet.errors import TrimnetError
    from trimnet.optimize.quantize import AccuracyDropError, ParityMismatch

    t0 = time.perf_counter()
    try:
        with quiet(*PASSES):
            q = quantized(ctx, model, key.precision, key.backend, split="val")
    except (ParityMismatch, AccuracyDropError) as why:  # this model at this precision: not a candidate
        return Skip(str(why), backend_wide=False)
    except TrimnetError as why:  # this precision does not run on this backend here (missing tool, ...)
        return Skip(str(why), backend_wide=True)
    if q.kept != key.precision:  # the runtime ran fp32 anyway: nothing new to measure
        return Skip(q.reason or "the runtime ran fp32", backend_wide=True)
    with q.runner(ctx.cfg.threads) as runner:
        timing = latency(runner, ctx.example, key.backend, ctx.cfg)
    return Candidate.of(key, val_accuracy=q.accuracy_after, **size(model, ctx.example), **timing,
                        seconds=time.perf_counter() - t0)


def quantized(ctx: "SearchContext", model: nn.Module, precision: str, backend: str, split: str):
    """``quantize`` as the search runs it (no fusion, slower kept: latency decides here), scored on ``split``."""
    from trimnet.optimize.quantize import QuantizeConfig, quantize

    cfg = ctx.cfg
    qcfg = QuantizeConfig(precision=precision, backend=backend, fuse=False, keep_slower=True,
                          batch_sizes=(cfg.batch,), bench_time_s=cfg.bench_time_s, seed=cfg.seed, threads=cfg.threads)
    return quantize(model, ctx.data, qcfg, task=ctx.task, split=split)


def open_runner(ctx: "SearchContext", c: Candidate, fused: dict[str, nn.Module]):
    """Candidate ``c`` loaded on its backend again, for the final round."""
    if c.original or c.precision == "fp32":
        from trimnet.runtime import load_runner

        return load_runner(c.backend, ctx.model if c.original else fused[c.structure], ctx.example,
                           threads=ctx.cfg.threads)
    with quiet(*PASSES):
        return quantized(ctx, fused[c.structure], c.precision, c.backend, split="val").runner(ctx.cfg.threads)


def score_on_test(ctx: "SearchContext", result: "OptimizeResult") -> None:
    """The original's and the winner's test scores: the split the search never looked at."""
    x_test, y_test = ctx.data.split("test")
    result.original_test_accuracy = torch_score(ctx.model, x_test, y_test, ctx.task)
    best = result.best
    if best.precision != "fp32":
        result.quantized = quantized(ctx, result.model, best.precision, best.backend, split="test")
        result.test_accuracy = result.quantized.accuracy_after
    else:
        result.test_accuracy = torch_score(result.model, x_test, y_test, ctx.task)


def size(model: nn.Module, example: torch.Tensor) -> dict:
    from trimnet.profile import profile

    p = profile(model, example[:1])
    return {"macs": int(p.macs), "params": int(p.params)}


def torch_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any = None) -> float:
    """The task's metric (accuracy for classification) of the eager model."""
    from trimnet.train.evaluate import task_score

    return task_score(model, x, y, task)


def runner_score(run, x: torch.Tensor, y: torch.Tensor, task: Any = None, batch: int = 512) -> float:
    """The task's metric of the model as a runtime runs it."""
    from trimnet.train.evaluate import runner_score as score

    return score(run, x, y, task, batch)


def latency(runner, example: torch.Tensor, backend: str, cfg: "OptimizeConfig") -> dict:
    """p50, p99 and throughput at the example's batch, and whether other work competed meanwhile."""
    from trimnet.bench.config import BenchConfig
    from trimnet.bench.harness import BackendSpec, measure_runner

    bench = BenchConfig(min_time_s=cfg.bench_time_s, max_time_s=max(cfg.bench_time_s * 4, 2.0), warmup_max_s=2.0)
    m = measure_runner(runner, example.numpy(), bench, BackendSpec.parse(backend), cfg.threads)
    return {"latency_ms": m.latency_ms["p50"], "p99_ms": m.latency_ms["p99"], "throughput": m.throughput,
            "flagged": m.flagged}
