"""Which candidates the search builds, and in what order.

Structures first: each criterion prunes at growing ratios, fine-tuning with distillation; a
ratio out of the budget is fine-tuned once more for longer (``finetune_retry_epochs``) before
its direction stops (larger ratios only lose more). Then every structure in the budget is
fused and run at each precision on each backend: structures × backends × precisions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from torch import nn

from trimnet.optimize.candidates import Candidate, CandidateKey
from trimnet.optimize.measure import Skip, measure, size
from trimnet.optimize.progress import quiet

if TYPE_CHECKING:
    from trimnet.optimize.context import SearchContext


def prune_structures(ctx: "SearchContext", floor: float
                     ) -> tuple[dict[CandidateKey, nn.Module], dict[str, dict], list[Candidate]]:
    """The structures within the budget (the original first), every prune record by structure,
    and the candidates that ended a direction by falling out of the budget."""
    cfg, say = ctx.cfg, ctx.say
    structures: dict[CandidateKey, nn.Module] = {CandidateKey(): ctx.model}
    records: dict[str, dict] = {}
    rejected: list[Candidate] = []
    budgets = [cfg.finetune_epochs] + ([cfg.finetune_retry_epochs]
                                       if cfg.finetune_retry_epochs > cfg.finetune_epochs else [])
    for criterion in cfg.criteria:
        for ratio in sorted(cfg.ratios):
            if ctx.out_of_time():
                say("time budget spent: no more pruning")
                break
            for i, epochs in enumerate(budgets):
                if i and ctx.out_of_time():
                    break
                key = CandidateKey(criterion, ratio, retry_epochs=epochs if i else None)
                pruned, record = _pruned(ctx, key, epochs)
                records[key.structure] = record
                acc = ctx.score(pruned)
                ok = acc >= floor
                say(f"pruned {key.structure}: validation {ctx.metric} {acc:.4f} ({'within' if ok else 'out of'} budget"
                    f"{'' if ok or i + 1 == len(budgets) else f'; fine-tuning {budgets[i + 1]} epochs instead'})")
                if ok:
                    break
            if not ok:
                rejected.append(Candidate.of(key.run_on("torch"), val_accuracy=acc,
                                             verdict="over the accuracy budget; larger ratios not tried",
                                             **size(pruned, ctx.example)))
                break
            structures[key] = pruned
    return structures, records, rejected


def precision_sweep(ctx: "SearchContext", structures: dict[CandidateKey, nn.Module], floor: float
                    ) -> tuple[dict[str, nn.Module], list[Candidate]]:
    """Every structure fused, then measured at each precision on each backend. Returns the fused
    models by structure name and the candidates measured, in order."""
    from trimnet.optimize.fuse import fuse

    precisions = _precisions(ctx.cfg.precisions, ctx.backends, ctx.say)
    fused: dict[str, nn.Module] = {}
    measured: list[Candidate] = []
    not_lower: set[tuple[str, str]] = set()  # (precision, backend) that ran fp32 anyway on this machine
    for structure, m in structures.items():
        fused[structure.structure] = fuse(m).model.eval()
        for backend in ctx.backends:
            for precision in precisions[backend]:
                if ctx.out_of_time():
                    break
                if (precision, backend) in not_lower:
                    continue
                key = structure.fused_on(precision, backend)
                c = measure(ctx, fused[key.structure], key)
                if isinstance(c, Skip):
                    ctx.say(f"{precision} on {backend}: {c.why}; not a candidate" +
                            ("" if c.backend_wide else f" ({key.description})"))
                    if c.backend_wide:  # the same for every structure: do not try again
                        not_lower.add((precision, backend))
                    continue
                c.accepted = c.val_accuracy is not None and c.val_accuracy >= floor and c.latency_ms is not None
                measured.append(c)
                ctx.say(f"{c.description}: validation {ctx.metric} {c.val_accuracy:.4f}, "
                        f"{c.latency_ms if c.latency_ms is not None else float('nan'):.3f} ms")
    return fused, measured


def _pruned(ctx: "SearchContext", key: CandidateKey, epochs: int) -> tuple[nn.Module, dict]:
    """Prune + fine-tune, or load the cached result of an earlier run."""
    from trimnet.optimize.finetune import FinetuneConfig
    from trimnet.optimize.prune import PruneConfig, prune

    settings = ctx.cache.structure_settings(ctx.model, criterion=key.criterion, ratio=key.ratio, epochs=epochs,
                                            seed=ctx.cfg.seed)
    hit = ctx.cache.structure(key, settings)
    if hit is not None:
        return hit
    pcfg = PruneConfig(criterion=key.criterion, ratio=key.ratio,
                       finetune=FinetuneConfig(epochs=epochs, seed=ctx.cfg.seed))
    with quiet("trimnet.train", "trimnet.prune"):
        result = prune(ctx.model, ctx.data, pcfg, task=ctx.task)
    record = result.to_dict()
    ctx.cache.put_structure(key, settings, result.model, record, ctx.data)
    return result.model.eval(), record


def _precisions(asked: list[str], backends: list[str], say: Callable[[str], None]) -> dict[str, list[str]]:
    """Per backend, the asked precisions that have a method there (fp32 always)."""
    from trimnet.optimize.quantize import METHODS

    out = {}
    for backend in backends:
        out[backend] = [p for p in asked if p == "fp32" or f"{p}:{backend}" in METHODS]
        missing = [p for p in asked if p not in out[backend]]
        if missing:
            say(f"precisions on {backend}: {', '.join(out[backend])} ({', '.join(missing)}: no method for {backend})")
    return out
