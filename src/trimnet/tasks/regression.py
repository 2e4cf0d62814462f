"""Regression: real-valued outputs, mean squared error loss, metric negative mean absolute error.

The metric is *negative* MAE so that higher is better, as for accuracy: the optimizer's
budget "lose at most ``max_accuracy_drop``" then means "the MAE may grow by at most that
much", in the targets' own units.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from trimnet.tasks.base import Task, check_2d


class Regression(Task):
    name = "regression"
    metric_name = "neg_mae"

    def loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(outputs.reshape(targets.shape), targets.to(outputs.dtype))

    def score(self, predictions: torch.Tensor, targets: torch.Tensor) -> float:
        if len(targets) == 0:
            return float("nan")
        targets = torch.as_tensor(targets)
        return -float((predictions.reshape(targets.shape).to(targets.device) - targets).abs().float().mean())

    def check_outputs(self, outputs: torch.Tensor, data: Any) -> None:
        n = data.num_classes  # a regression dataset's outputs: one per target column
        check_2d(outputs, n, data, "target column" + ("s" if n != 1 else ""), f"build it with num_classes={n}")

    def describe(self, data: Any = None) -> dict:
        out = super().describe()
        if data is not None:
            out["outputs"] = data.num_classes
        return out


def regression_report(outputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """MAE, RMSE and R² (coefficient of determination, over all target columns)."""
    pred = outputs.reshape(targets.shape).float()
    t = targets.float()
    err = pred - t
    ss_res = float((err ** 2).sum())
    ss_tot = float(((t - t.mean(0)) ** 2).sum())
    return {"mae": float(err.abs().mean()), "rmse": float((err ** 2).mean().sqrt()),
            "r2": 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")}
