"""Classification: logits in, cross-entropy loss, argmax predictions, accuracy (computed here only)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trimnet.tasks.base import Loss, Task, check_2d


class Classification(Task):
    name = "classification"
    metric_name = "accuracy"
    distills = True

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(outputs, targets)

    def training_loss(self, label_smoothing: float = 0.0) -> Loss:
        if not label_smoothing:
            return self.loss
        return lambda outputs, targets: F.cross_entropy(outputs, targets, label_smoothing=label_smoothing)

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        return outputs.argmax(1)

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> float:
        return accuracy(predictions, targets)

    def check_outputs(self, outputs: torch.Tensor, data: Any) -> None:
        n = data.num_classes
        check_2d(outputs, n, data, "classes", f"build it with num_classes={n}")

    def describe(self, data: Any = None) -> dict:
        out = super().describe()
        if data is not None:
            out["outputs"] = data.num_classes
        return out


def accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of predicted class indices equal to the labels: trimnet's one accuracy."""
    predictions = torch.as_tensor(predictions).reshape(-1)
    targets = torch.as_tensor(targets).reshape(-1)
    if len(targets) == 0:
        return float("nan")
    return float((predictions.to(targets.device) == targets).float().mean())
