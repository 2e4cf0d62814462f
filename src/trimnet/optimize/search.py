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
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from trimnet.data.dataset import Dataset
from trimnet.errors import ConfigError
from trimnet.optimize.candidates import Candidate, CandidateKey
from trimnet.optimize.final import final_round
from trimnet.optimize.result import OptimizeResult
from trimnet.optimize.select import mark

log = logging.getLogger("trimnet.optimize")
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
    from trimnet.bench.interference import auto_threads
    from trimnet.data.loaders import as_dataset
    from trimnet.models.families import as_module
    from trimnet.optimize.progress import reporter
    from trimnet.runtime import get_backend, load_runner
    from trimnet.tasks import task_for

    model = as_module(model, data)  # a transformers classifier becomes tensor-in / logits-out
    cfg = (config or OptimizeConfig()).validate()
    data = as_dataset(data, task=task if isinstance(task, str) else None, seed=cfg.seed)
    task = task_for(data, task, metric=evaluate, loss=loss)
    metric = task.metric_name
    backends = list(dict.fromkeys([cfg.target_backend, *cfg.backends]))
    for b in backends:
        why = get_backend(b).why_not()
        if why is not None:
            raise ConfigError(f"backend {b} cannot run here: {why}")
    if len(data.y_val) == 0:
        raise ConfigError("optimize decides on the validation split, which is empty; set data.val_split > 0")
    if cfg.threads is None:  # measured once, so every candidate runs with the same count
        cfg = dataclasses.replace(cfg, threads=auto_threads())
    say = reporter(progress)
    cache = _Cache(Path(out) / "candidates" if out else None, task.describe())
    started = time.perf_counter()
    model = copy.deepcopy(model).cpu().eval()
    x_val, y_val = data.split("val")
    example = task.example_inputs(data, cfg.batch).float()
    base_acc = _torch_accuracy(model, x_val, y_val, task)
    floor = base_acc - cfg.max_accuracy_drop
    say(f"original: validation {metric} {base_acc:.4f}; budget: >= {floor:.4f}; {cfg.threads} threads")

    def out_of_time() -> bool:
        return time.perf_counter() - started > cfg.time_budget_s

    candidates: list[Candidate] = []
    original = _measure_fp32(model, CandidateKey().run_on(cfg.target_backend), cfg, x_val, y_val, example, cache, task)
    original.original = True
    candidates.append(original)
    say(f"original on {cfg.target_backend}: {original.latency_ms:.3f} ms at batch {cfg.batch}")

    structures: dict[CandidateKey, nn.Module] = {CandidateKey(): model}
    records: dict[str, dict] = {}
    budgets = [cfg.finetune_epochs] + ([cfg.finetune_retry_epochs]
                                       if cfg.finetune_retry_epochs > cfg.finetune_epochs else [])
    for criterion in cfg.criteria:
        for ratio in sorted(cfg.ratios):
            if out_of_time():
                say("time budget spent: no more pruning")
                break
            for i, epochs in enumerate(budgets):
                if i and out_of_time():
                    break
                key = CandidateKey(criterion, ratio, retry_epochs=epochs if i else None)
                pruned, record = _pruned(model, data, key, epochs, cfg, cache, task)
                acc = _torch_accuracy(pruned, x_val, y_val, task)
                records[key.structure] = record
                ok = acc >= floor
                say(f"pruned {key.structure}: validation {metric} {acc:.4f} ({'within' if ok else 'out of'} budget"
                    f"{'' if ok or i + 1 == len(budgets) else f'; fine-tuning {budgets[i + 1]} epochs instead'})")
                if ok:
                    break
            if not ok:
                candidates.append(Candidate.of(key.run_on("torch"), val_accuracy=acc,
                                               verdict="over the accuracy budget; larger ratios not tried",
                                               **_size(pruned, example)))
                break
            structures[key] = pruned

    from trimnet.optimize.fuse import fuse

    precisions = _precisions(cfg.precisions, backends, say)
    fused: dict[str, nn.Module] = {}
    not_lower: set[str] = set()  # precision@backend that ran fp32 anyway on this machine
    for structure, m in structures.items():
        fused[structure.structure] = fuse(m).model.eval()
        for backend in backends:
            for precision in precisions[backend]:
                if out_of_time():
                    break
                key = structure.fused_on(precision, backend)
                if f"{precision}@{backend}" in not_lower:
                    continue
                if precision == "fp32":
                    c = _measure_fp32(fused[key.structure], key, cfg, x_val, y_val, example, cache, task)
                else:
                    c = _measure_lowp(fused[key.structure], data, key, cfg, cache, task)
                if isinstance(c, _Skip):
                    say(f"{precision} on {backend}: {c.why}; not a candidate" +
                        ("" if c.backend_wide else f" ({key.description})"))
                    if c.backend_wide:  # the same for every structure: do not try again
                        not_lower.add(f"{precision}@{backend}")
                    continue
                c.accepted = c.val_accuracy is not None and c.val_accuracy >= floor and c.latency_ms is not None
                candidates.append(c)
                say(f"{c.description}: validation {metric} {c.val_accuracy:.4f}, "
                    f"{c.latency_ms if c.latency_ms is not None else float('nan'):.3f} ms")

    if not out_of_time():
        def open_runner(c: Candidate):
            if c.original or c.precision == "fp32":
                return load_runner(c.backend, model if c.original else fused[c.structure], example,
                                   threads=cfg.threads)
            with _quiet("trimnet.optimize.quantize", "trimnet.optimize.fuse"):
                return _quantize(fused[c.structure], data, c.precision, c.backend, cfg, split="val",
                                 task=task).runner(cfg.threads)

        final_round(candidates, original, open_runner, example, cfg.bench_time_s, cfg.threads, say)
    mark(candidates, original, floor)
    best = next(c for c in candidates if c.winner)
    winner_model = fused.get(best.structure, model) if not best.original else model
    result = OptimizeResult(model=winner_model, best=best, original=original, candidates=candidates,
                            baseline_val_accuracy=base_acc, prune_records=records, threads=cfg.threads,
                            original_model=model, source={"in_shape": tuple(data.in_shape),
                                                          "class_names": data.class_names,
                                                          "normalization": data.normalization, "kind": data.kind})
    x_test, y_test = data.split("test")
    result.original_test_accuracy = _torch_accuracy(model, x_test, y_test, task)
    if best.precision != "fp32":
        result.quantized = _quantize(winner_model, data, best.precision, best.backend, cfg, split="test", task=task)
        result.test_accuracy = result.quantized.accuracy_after
    else:
        result.test_accuracy = _torch_accuracy(winner_model, x_test, y_test, task)
    result.seconds = time.perf_counter() - started
    say(f"winner: {best.description}: {result.speedup or 1:.2f}x faster, test {metric} "
        f"{result.test_accuracy:.4f} (original {result.original_test_accuracy:.4f})"
        + ("; some figures were taken while other work competed for the cores" if result.flagged else ""))
    say.close()
    return result


def _size(model: nn.Module, example: torch.Tensor) -> dict:
    from trimnet.profile import profile

    p = profile(model, example[:1])
    return {"macs": int(p.macs), "params": int(p.params)}


def _torch_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any = None) -> float:
    """The task's metric (accuracy for classification) of the eager model."""
    from trimnet.train.evaluate import task_score

    return task_score(model, x, y, task)


def _runner_accuracy(run, x: torch.Tensor, y: torch.Tensor, task: Any = None, batch: int = 512) -> float:
    """The task's metric of the model as a runtime runs it."""
    from trimnet.train.evaluate import runner_score

    return runner_score(run, x, y, task, batch)


def _latency(runner, example: torch.Tensor, backend: str, cfg: OptimizeConfig) -> dict:
    from trimnet.bench.config import BenchConfig
    from trimnet.bench.harness import BackendSpec, measure_runner

    bench = BenchConfig(min_time_s=cfg.bench_time_s, max_time_s=max(cfg.bench_time_s * 4, 2.0), warmup_max_s=2.0)
    m = measure_runner(runner, example.numpy(), bench, BackendSpec.parse(backend), cfg.threads)
    return {"latency_ms": m.latency_ms["p50"], "p99_ms": m.latency_ms["p99"], "throughput": m.throughput,
            "flagged": m.flagged}


def _measure_fp32(model: nn.Module, key: CandidateKey, cfg: OptimizeConfig,
                  x_val, y_val, example, cache: "_Cache", task: Any = None) -> Candidate:
    hit = cache.get(key, cfg, model)
    if hit is not None:
        return hit
    from trimnet.runtime import load_runner

    t0 = time.perf_counter()
    runner = load_runner(key.backend, model, example, threads=cfg.threads)
    try:
        acc = _runner_accuracy(runner.run, x_val, y_val, task)
        timing = _latency(runner, example, key.backend, cfg)
    finally:
        runner.close()
    c = Candidate.of(key, val_accuracy=acc, **_size(model, example), **timing, seconds=time.perf_counter() - t0)
    cache.put(key, cfg, model, c)
    return c


def _quantize(model: nn.Module, data: Dataset, precision: str, backend: str, cfg: OptimizeConfig, split: str,
              task: Any = None):
    """``quantize`` as the search runs it, measuring accuracy on ``split``."""
    from trimnet.optimize.quantize import QuantizeConfig, quantize

    qcfg = QuantizeConfig(precision=precision, backend=backend, fuse=False, keep_slower=True,
                          batch_sizes=(cfg.batch,), bench_time_s=cfg.bench_time_s, seed=cfg.seed, threads=cfg.threads)
    return quantize(model, data, qcfg, task=task, split=split)


def _measure_lowp(model: nn.Module, data: Dataset, key: CandidateKey, cfg: OptimizeConfig, cache: "_Cache",
                  task: Any = None) -> "Candidate | _Skip":
    """The candidate, or why it is not one."""
    from trimnet.errors import TrimnetError

    hit = cache.get(key, cfg, model)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    example = data.x_test[:cfg.batch].float()
    from trimnet.optimize.quantize import AccuracyDropError, ParityMismatch

    try:
        with _quiet("trimnet.optimize.quantize", "trimnet.optimize.fuse"):
            q = _quantize(model, data, key.precision, key.backend, cfg, split="val", task=task)
    except (ParityMismatch, AccuracyDropError) as why:  # this model at this precision: not a candidate
        return _Skip(str(why), backend_wide=False)
    except TrimnetError as why:  # this precision does not run on this backend here (missing tool, ...)
        return _Skip(str(why), backend_wide=True)
    if q.kept != key.precision:  # the runtime ran fp32 anyway: nothing new to measure
        return _Skip(q.reason or "the runtime ran fp32", backend_wide=True)
    with q.runner(cfg.threads) as runner:
        timing = _latency(runner, example, key.backend, cfg)
    c = Candidate.of(key, val_accuracy=q.accuracy_after, **_size(model, example), **timing,
                     seconds=time.perf_counter() - t0)
    cache.put(key, cfg, model, c)
    return c


def _pruned(model: nn.Module, data: Dataset, key: CandidateKey, epochs: int, cfg: OptimizeConfig,
            cache: "_Cache", task: Any = None) -> tuple[nn.Module, dict]:
    """Prune + fine-tune, or load the cached result of an earlier run."""
    from trimnet.artifact import load_artifact, save_artifact
    from trimnet.optimize.finetune import FinetuneConfig
    from trimnet.optimize.prune import PruneConfig, prune

    where = cache.dir / key.structure if cache.dir else None
    settings = {"criterion": key.criterion, "ratio": key.ratio, "epochs": epochs, "seed": cfg.seed,
                "model": _fingerprint(model), "task": cache.tag}
    if where is not None and (where / "model.json").exists():
        art = load_artifact(where)
        if art.meta.get("search_settings") == settings:
            return art.model, art.meta.get("prune_record", {})
    pcfg = PruneConfig(criterion=key.criterion, ratio=key.ratio,
                       finetune=FinetuneConfig(epochs=epochs, seed=cfg.seed))
    with _quiet("trimnet.train", "trimnet.prune"):
        result = prune(model, data, pcfg, task=task)
    record = result.to_dict()
    if where is not None:
        save_artifact(result.model, where, in_shape=data.in_shape, class_names=data.class_names,
                      normalization=data.normalization,
                      extra={"search_settings": settings, "prune_record": record, "kind": data.kind,
                             "task": cache.tag})
    return result.model.eval(), record


@dataclass
class _Skip:
    why: str
    backend_wide: bool  # True: no model would run lower on this backend here (no tool, no bf16 in this CPU)


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


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Inside the search, the passes' per-epoch and per-step INFO lines are noise; -v keeps them."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() == logging.INFO:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _fingerprint(model: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


class _Cache:
    """Finished candidates as JSON, keyed by label + settings + the exact weights measured."""

    def __init__(self, directory: Path | None, tag: dict | None = None):
        self.dir = directory
        self.tag = tag or {}  # the task and metric that measured: another metric measures again

    def _file(self, key: CandidateKey, cfg: OptimizeConfig, model: nn.Module) -> Path | None:
        if self.dir is None:
            return None
        text = json.dumps({"label": key.label, "batch": cfg.batch, "bench_time_s": cfg.bench_time_s, "threads": cfg.threads,
                          "model": _fingerprint(model), "task": self.tag}, sort_keys=True)
        return self.dir / "measured" / (hashlib.sha256(text.encode()).hexdigest()[:20] + ".json")

    def get(self, key: CandidateKey, cfg: OptimizeConfig, model: nn.Module) -> Candidate | None:
        file = self._file(key, cfg, model)
        if file is None or not file.exists():
            return None
        try:
            c = Candidate(**json.loads(file.read_text()))
        except (json.JSONDecodeError, TypeError):
            return None  # a damaged cache entry is measured again
        c.winner = c.pareto = c.accepted = False  # decided again in this run
        c.verdict = ""
        c.description = key.description  # entries written before descriptions were stored hold the label
        return c

    def put(self, key: CandidateKey, cfg: OptimizeConfig, model: nn.Module, c: Candidate) -> None:
        from trimnet.artifact import write_json

        file = self._file(key, cfg, model)
        if file is not None:
            write_json(file, c.to_dict())
