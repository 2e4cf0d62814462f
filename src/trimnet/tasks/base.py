"""The ``Task`` seam: what a model's outputs mean, how they are trained, and how they are scored.

Train, evaluate, fine-tuning, quantization's accuracy guard and the optimizer's search all
ask the task, never assume classification. A metric is *higher-is-better* (accuracy,
negative mean absolute error, a user's score), so one accuracy budget ("may lose at most
this much of the metric") holds for every task.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from trimnet.errors import ModelError

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) -> scalar
Metric = Callable[[torch.Tensor, torch.Tensor], float]  # (outputs, targets) -> higher is better


class Task:
    """A kind of problem: its loss, its predictions, its metric and its output description."""

    name: str = "task"
    metric_name: str = "score"
    # the soft targets of a teacher help its pruned student (fine-tuning with distillation)
    distills: bool = False
    # the metric is a mean over samples, so folding it over batches is exact (the training
    # loop's running train metric); a user's metric over a whole split is not
    per_sample: bool = True

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def training_loss(self, label_smoothing: float = 0.0) -> Loss:
        """The loss the training loop minimises (options that only some tasks have go here)."""
        return self.loss

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        """What is kept of a batch's outputs to score it (class indices, values...)."""
        return outputs

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> float:
        """The metric on predictions; higher is better."""
        raise NotImplementedError

    def metric(self, outputs: Any, targets: torch.Tensor) -> float:
        """The metric on raw outputs (a tensor, or a runtime's numpy array)."""
        return float(self.score(self.predict(as_tensor(outputs)), targets))

    def example_inputs(self, data: Any, batch: int = 1) -> torch.Tensor:
        return data.x_test[:batch].clone()

    def check_outputs(self, outputs: torch.Tensor, data: Any) -> None:
        """A ``ModelError`` naming the fix when the model's outputs cannot fit the targets."""

    def describe(self, data: Any = None) -> dict:
        """The task as recorded in an artifact's model.json (report and serving read it)."""
        return {"name": self.name, "metric": self.metric_name}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, metric={self.metric_name!r})"


def as_tensor(outputs: Any) -> torch.Tensor:
    if isinstance(outputs, torch.Tensor):
        return outputs.detach().float().cpu()
    if isinstance(outputs, (list, tuple)):
        outputs = outputs[0]
    return torch.from_numpy(np.ascontiguousarray(np.asarray(outputs, dtype=np.float32)))


def check_2d(outputs: torch.Tensor, width: int, data: Any, what: str, fix: str) -> None:
    if outputs.dim() != 2 or outputs.shape[1] != width:
        raise ModelError(f"the model gives outputs of shape {tuple(outputs.shape[1:])} but {data.name} has "
                         f"{width} {what}; {fix}")
