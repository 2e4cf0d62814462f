"""``optimize``: search pruning × fusion × precision × backend under an accuracy budget,
and choose by *measured* latency on the target backend and batch.

The search (DESIGN.md: optimize calls train, profile and bench):

1. measure the original on the target (exported as is, fp32) and on the validation split;
2. prune with each criterion at growing ratios, fine-tuning with distillation; a direction
   stops at the first ratio whose validation accuracy falls out of the budget (larger
   ratios only lose more), or when the time budget is spent;
3. fuse every structure that stayed in budget, then run it at each precision on each
   backend, measuring validation accuracy and latency through that runtime;
4. the winner is the fastest candidate within the budget; it must beat the original on
   the target, or the original is kept. Its test accuracy is measured last, on a split the
   search never looked at.

Finished candidates are cached in ``out/candidates/`` (keyed by their settings), so a rerun
does not prune, fine-tune or measure them again.

Where each part lives: ``candidates.py`` (a candidate's key and record), ``sweep.py`` (steps 2
and 3: what is built), ``measure.py`` (one candidate's score, latency and size),
``final.py`` and ``select.py`` (step 4), ``cache.py``, and ``context.py`` (what the steps share).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.optimize.candidates import Candidate, CandidateKey
from trimnet.optimize.context import SearchContext
from trimnet.optimize.final import final_round
from trimnet.optimize.measure import measure, open_runner, score_on_test
from trimnet.optimize.result import OptimizeResult
from trimnet.optimize.select import mark
from trimnet.optimize.sweep import precision_sweep, prune_structures

if TYPE_CHECKING:
    from trimnet.data.dataset import Dataset

__all__ = ["Candidate", "OptimizeConfig", "OptimizeResult", "optimize"]
OPTIMIZE_CONFIG_VERSION = 1


@dataclass
class OptimizeConfig:
    version: int = OPTIMIZE_CONFIG_VERSION
    max_accuracy_drop: float = 0.005  # absolute, on the validation split
    target_backend: str = "onnxruntime"  # where latency decides
    batch: int = 1  # the batch size latency is measured at
    throughput_batch: int = 256  # reported beside it
    backends: list[str] = field(default_factory=list)  # backends the search may pick; empty: the target only
    criteria: list[str] = field(default_factory=lambda: ["apoz", "l1"])
    ratios: list[float] = field(default_factory=lambda: [0.5, 0.75, 0.875])
    finetune_epochs: int = 5
    # a ratio that misses the budget after finetune_epochs is fine-tuned again this long before
    # its direction is given up (0: no second try); the search's fine-tune budget dimension
    finetune_retry_epochs: int = 20
    precisions: list[str] = field(default_factory=lambda: ["fp32", "bf16", "int8"])
    time_budget_s: float = 900.0
    bench_time_s: float = 0.5  # measured seconds per candidate
    threads: int | None = None  # threads every runtime uses; None: the cores other work leaves free (measured)
    seed: int = 0

    def validate(self) -> "OptimizeConfig":
        from trimnet.optimize.quantize.config import PRECISIONS

        if not 0.0 <= self.max_accuracy_drop < 1.0:
            raise ConfigError(f"max_accuracy_drop is absolute accuracy in [0, 1) (0.005 = half a point); "
                              f"got {self.max_accuracy_drop}")
        if any(not 0.0 < r < 1.0 for r in self.ratios):
            raise ConfigError(f"optimize ratios must lie in (0, 1); got {self.ratios}")
        unknown = [p for p in self.precisions if p != "fp32" and p not in PRECISIONS]
        if unknown:
            raise ConfigError(f"unknown precision {unknown[0]!r}; choose from fp32, {', '.join(PRECISIONS)}")
        if self.batch < 1 or self.throughput_batch < 1:
            raise ConfigError("optimize batch sizes must be >= 1")
        if self.finetune_epochs < 0 or self.finetune_retry_epochs < 0:
            raise ConfigError("finetune_epochs and finetune_retry_epochs must be >= 0")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"optimize threads must be >= 1 (or unset: the free cores); got {self.threads}")
        if not self.bench_time_s > 0:  # also refuses NaN
            raise ConfigError(f"bench_time_s must be > 0 seconds; got {self.bench_time_s}")
        if self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s must be > 0; got {self.time_budget_s}")
        return self


def optimize(model: nn.Module, data: Dataset | Any, config: OptimizeConfig | None = None, *,
             out: str | Path | None = None, progress: Callable[[str], None] | bool | None = None,
             evaluate: Callable[[torch.Tensor, torch.Tensor], float] | None = None,
             loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
             task: Any = None) -> OptimizeResult:
    """Find the fastest trimmed version of ``model`` on the target that stays within the budget.

    ``data``: a ``Dataset``, a ``DataLoader`` or a (train, val, test) trio of them. The
    budget is on the task's metric (accuracy for classification, negative MAE for
    regression), or on ``evaluate(outputs, targets) -> float`` (higher is better) when
    given; ``loss(outputs, targets)`` is what fine-tuning minimises.

    Each step is logged (``trimnet.optimize``, INFO); ``progress`` takes the messages instead
    when it is a callable, or switches the terminal status line on or off (None: on when
    stderr is a terminal and ``CI`` is not set).
    """
    cfg = (config or OptimizeConfig()).validate()
    ctx = SearchContext.prepare(model, data, cfg, out=out, progress=progress, evaluate=evaluate, loss=loss, task=task)
    cfg, model, say = ctx.cfg, ctx.model, ctx.say
    base_acc = ctx.score(model)  # 1. the original
    floor = base_acc - cfg.max_accuracy_drop
    say(f"original: validation {ctx.metric} {base_acc:.4f}; budget: >= {floor:.4f}; {cfg.threads} threads")
    original = measure(ctx, model, CandidateKey().run_on(cfg.target_backend))
    original.original = True
    say(f"original on {cfg.target_backend}: {original.latency_ms:.3f} ms at batch {cfg.batch}")

    structures, records, rejected = prune_structures(ctx, floor)  # 2. pruned structures within the budget
    fused, measured = precision_sweep(ctx, structures, floor)  # 3. × backends × precisions
    candidates = [original, *rejected, *measured]

    if not ctx.out_of_time():  # 4. the fastest timed again side by side with the original, the winner chosen
        final_round(candidates, original, lambda c: open_runner(ctx, c, fused), ctx.example, cfg.bench_time_s,
                    cfg.threads, say)
    mark(candidates, original, floor)
    best = next(c for c in candidates if c.winner)
    result = OptimizeResult(model=model if best.original else fused.get(best.structure, model), best=best,
                            original=original, candidates=candidates, baseline_val_accuracy=base_acc,
                            prune_records=records, threads=cfg.threads, original_model=model, source=ctx.source())
    score_on_test(ctx, result)
    result.seconds = ctx.elapsed()
    say(f"winner: {best.description}: {result.speedup or 1:.2f}x faster, test {ctx.metric} "
        f"{result.test_accuracy:.4f} (original {result.original_test_accuracy:.4f})"
        + ("; some figures were taken while other work competed for the cores" if result.flagged else ""))
    say.close()
    return result
