"""What every step of one search shares: the checked inputs (config, dataset, task, the original
model), the validation split it decides on, the batch latency is timed at, the cache, the
progress messages and the clock of the time budget."""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.optimize.cache import CandidateCache

if TYPE_CHECKING:
    from trimnet.data.dataset import Dataset
    from trimnet.optimize.progress import Reporter
    from trimnet.optimize.search import OptimizeConfig


@dataclass
class SearchContext:
    cfg: "OptimizeConfig"  # validated, with its thread count decided
    data: "Dataset"
    task: Any
    model: nn.Module  # the original: a private copy, on the CPU, in eval mode
    backends: list[str]  # the target first, then the others the search may pick
    x_val: torch.Tensor
    y_val: torch.Tensor
    example: torch.Tensor  # a batch of the size latency is measured at
    cache: CandidateCache
    say: "Reporter"
    started: float

    @classmethod
    def prepare(cls, model: nn.Module, data: Any, cfg: "OptimizeConfig", *, out: str | Path | None,
                progress: Callable[[str], None] | bool | None, evaluate: Callable | None, loss: Callable | None,
                task: Any) -> "SearchContext":
        """Check and resolve ``optimize``'s inputs (see its docstring)."""
        from trimnet.bench.interference import auto_threads
        from trimnet.data.loaders import as_dataset
        from trimnet.models.families import as_module
        from trimnet.optimize.progress import reporter
        from trimnet.runtime import get_backend
        from trimnet.tasks import task_for

        model = as_module(model, data)  # a transformers classifier becomes tensor-in / logits-out
        data = as_dataset(data, task=task if isinstance(task, str) else None, seed=cfg.seed)
        task = task_for(data, task, metric=evaluate, loss=loss)
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
        cache = CandidateCache(Path(out) / "candidates" if out else None, task.describe())
        started = time.perf_counter()
        x_val, y_val = data.split("val")
        return cls(cfg=cfg, data=data, task=task, model=copy.deepcopy(model).cpu().eval(), backends=backends,
                   x_val=x_val, y_val=y_val, example=task.example_inputs(data, cfg.batch).float(), cache=cache,
                   say=say, started=started)

    @property
    def metric(self) -> str:
        return self.task.metric_name

    def score(self, model: nn.Module) -> float:
        """The task's metric (accuracy for classification) of the eager model on the validation split."""
        from trimnet.optimize.measure import torch_score

        return torch_score(model, self.x_val, self.y_val, self.task)

    def out_of_time(self) -> bool:
        return self.elapsed() > self.cfg.time_budget_s

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def source(self) -> dict:
        """What the winner's run directory records of the data."""
        return {"in_shape": tuple(self.data.in_shape), "class_names": self.data.class_names,
                "normalization": self.data.normalization, "kind": self.data.kind}
