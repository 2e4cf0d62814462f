"""Tasks: what a model's outputs mean (classification, regression, a user's metric), behind a registry.

``get_task("regression")``, ``list_tasks()``, ``task_for(data, metric=my_metric, loss=my_loss)``.
"""

from __future__ import annotations

from typing import Any

from trimnet.errors import ConfigError
from trimnet.registry import Registry
from trimnet.tasks.base import Loss, Metric, Task
from trimnet.tasks.classification import Classification, accuracy
from trimnet.tasks.regression import Regression, regression_report
from trimnet.tasks.user import UserTask

TASKS: Registry[Task] = Registry("task", ConfigError)
TASKS.register("classification")(Classification())
TASKS.register("regression")(Regression())


def register_task(name: str):
    return TASKS.register(name)


def list_tasks() -> list[str]:
    return TASKS.names()


def get_task(task: str | Task | dict | None = None) -> Task:
    """A task from its name, its artifact description (``{"name": ...}``) or itself; default classification."""
    if isinstance(task, Task):
        return task
    if isinstance(task, dict):
        task = task.get("name")
    return TASKS.get(task or "classification")


def task_for(data: Any = None, task: str | Task | None = None, *, metric: Metric | None = None,
             loss: Loss | None = None) -> Task:
    """The task to train and score ``data`` with: ``task``, else the dataset's own; plus the user's metric/loss."""
    base = get_task(task if task is not None else getattr(data, "task", None))
    if metric is None and loss is None:
        return base
    return UserTask(base, metric=metric, loss=loss)


__all__ = ["Classification", "Loss", "Metric", "Regression", "TASKS", "Task", "UserTask", "accuracy",
           "get_task", "list_tasks", "register_task", "regression_report", "task_for"]
