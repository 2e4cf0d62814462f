"""A task with the user's own metric and/or loss on top of a registered one.

``tn.optimize(model, data, cfg, evaluate=my_metric, loss=my_loss)``: ``my_metric(outputs,
targets) -> float`` (higher is better; return ``-error`` for an error) decides the search,
``my_loss(outputs, targets) -> tensor`` is what fine-tuning minimises. The metric sees the
model's raw outputs for the whole split at once (a tensor, whatever the runtime).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from trimnet.errors import ConfigError
from trimnet.tasks.base import Loss, Metric, Task, as_tensor


class UserTask(Task):
    def __init__(self, base: Task, metric: Metric | None = None, loss: Loss | None = None,
                 metric_name: str | None = None):
        for what, fn in (("evaluate", metric), ("loss", loss)):
            if fn is not None and not callable(fn):
                raise ConfigError(f"{what}= must be a function (outputs, targets) -> "
                                  f"{'float' if what == 'evaluate' else 'tensor'}; got {type(fn).__name__}")
        self.base = base
        self._metric = metric
        self._loss = loss
        self.name = base.name
        self.metric_name = metric_name or (getattr(metric, "__name__", "metric") if metric else base.metric_name)
        if self.metric_name == "<lambda>":
            self.metric_name = "metric"
        # soft targets of a teacher make sense only against the base task's own loss
        self.distills = base.distills and loss is None
        self.per_sample = metric is None

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self._loss(outputs, targets) if self._loss is not None else self.base.loss(outputs, targets)

    def training_loss(self, label_smoothing: float = 0.0) -> Loss:
        return self._loss if self._loss is not None else self.base.training_loss(label_smoothing)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs if self._metric is not None else self.base.predict(outputs)

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> float:
        if self._metric is None:
            return self.base.score(predictions, targets)
        value = self._metric(predictions, targets)
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"the metric {self.metric_name} returned {type(value).__name__}; "
                              "it must return one number (higher is better)") from None

    def metric(self, outputs: Any, targets: torch.Tensor) -> float:
        return self.score(self.predict(as_tensor(outputs)), targets)

    def check_outputs(self, outputs: torch.Tensor, data: Any) -> None:
        if self._loss is None:
            self.base.check_outputs(outputs, data)

    def describe(self, data: Any = None) -> dict:
        out = self.base.describe(data)
        out["metric"] = self.metric_name
        if self._metric is not None:
            out["metric_source"] = _where(self._metric)
        return out


def _where(fn: Any) -> str:
    module = inspect.getmodule(fn)
    return f"{module.__name__ if module else '?'}:{getattr(fn, '__qualname__', type(fn).__name__)}"
