"""Evaluation on a split (the task's metric; for classification per-class precision/recall and the
confusion matrix, for regression MAE/RMSE/R²) and prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from trimnet.data.dataset import Dataset
from trimnet.errors import DataError


@dataclass
class Evaluation:
    accuracy: float | None  # classification only
    loss: float | None
    per_class: dict[str, dict[str, float]]
    confusion: list[list[int]]
    samples: int
    split: str = "test"
    backend: str = "torch"
    task: str = "classification"
    metric: str = "accuracy"
    score: float | None = None  # the task's metric (higher is better); equals accuracy for classification
    extra: dict[str, float] = field(default_factory=dict)  # regression: mae, rmse, r2

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "loss": self.loss, "per_class": self.per_class,
                "confusion": self.confusion, "samples": self.samples, "split": self.split,
                "backend": self.backend, "task": self.task, "metric": self.metric, "score": self.score,
                **self.extra}


@dataclass
class Predictions:
    labels: list[int]
    names: list[str]
    probabilities: np.ndarray  # (N, classes); empty for regression
    sources: list[str] = field(default_factory=list)
    values: np.ndarray | None = None  # regression: the predicted targets, (N,) or (N, outputs)

    def to_dict(self, top_k: int = 1) -> dict[str, Any]:
        if self.values is not None:
            rows = [{"index": i, "value": v} for i, v in enumerate(self.values.tolist())]
            for row, source in zip(rows, self.sources):
                row["source"] = source
            return {"predictions": rows}
        rows = []
        for i, (label, name) in enumerate(zip(self.labels, self.names)):
            row = {"index": i, "label": label, "class": name, "confidence": float(self.probabilities[i, label])}
            if self.sources:
                row["source"] = self.sources[i]
            rows.append(row)
        return {"predictions": rows}


def logits_of(model: nn.Module, x: torch.Tensor, batch_size: int = 1024,
              device: torch.device | None = None) -> torch.Tensor:
    """Eval-mode logits for ``x`` in batches, on ``device`` (default: where the model is)."""
    if device is None:
        first = next(model.parameters(), None)
        device = first.device if first is not None else torch.device("cpu")
    was = model.training
    _set_mode(model, False)
    outs = []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            outs.append(model(x[i:i + batch_size].to(device)).float().cpu())
    _set_mode(model, was)
    return torch.cat(outs) if outs else torch.zeros((0, 0))


def score_and_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any = None, batch_size: int = 1024,
                   device: torch.device | None = None) -> tuple[float, float]:
    """The task's metric and loss on ``(x, y)``: the two numbers the training loop needs."""
    from trimnet.tasks import get_task

    task = get_task(task)
    outputs = logits_of(model, x, batch_size, device)
    with torch.no_grad():
        return task.metric(outputs, y), float(task.loss(outputs, y))


def score_and_loss_batches(model: nn.Module, batches: Any, task: Any = None,
                           device: torch.device | None = None) -> tuple[float, float]:
    """``score_and_loss`` over an iterable of (x, y) batches (a streamed split): only the outputs are kept."""
    from trimnet.tasks import get_task

    task = get_task(task)
    outputs, targets = [], []
    for xb, yb in batches:
        outputs.append(logits_of(model, xb, len(xb), device).cpu())
        targets.append(yb)
    if not outputs:
        return float("nan"), float("nan")
    outputs, targets = torch.cat(outputs), torch.cat(targets)
    with torch.no_grad():
        return task.metric(outputs, targets), float(task.loss(outputs, targets))


def accuracy_and_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024,
                      device: torch.device | None = None) -> tuple[float, float]:
    """Classification's ``score_and_loss``."""
    return score_and_loss(model, x, y, "classification", batch_size, device)


def task_score(model: nn.Module, x: torch.Tensor, y: torch.Tensor, task: Any = None, batch_size: int = 1024) -> float:
    """The task's metric (accuracy for classification) of an eager model on ``(x, y)``."""
    from trimnet.tasks import get_task

    return get_task(task).metric(logits_of(model, x, batch_size), y)


def runner_score(run: Any, x: torch.Tensor, y: torch.Tensor, task: Any = None, batch: int = 256) -> float:
    """The task's metric of a runtime's ``run(np.ndarray) -> np.ndarray`` on ``(x, y)``."""
    from trimnet.tasks import get_task

    if len(x) == 0:
        return float("nan")
    outputs = [torch.from_numpy(np.asarray(run(np.ascontiguousarray(x[i:i + batch].numpy(), dtype=np.float32)),
                                           dtype=np.float32)) for i in range(0, len(x), batch)]
    return get_task(task).metric(torch.cat(outputs), y)


def _set_mode(model: nn.Module, training: bool) -> None:
    try:
        model.train(training)
    except NotImplementedError:
        pass  # a torch.export program: traced in eval mode, and it refuses mode changes


def split_batches(data: Any, split: str, batch_size: int):
    """(x, y) batches of a split: slices of its tensors, or a streamed split read from disk."""
    from trimnet.data.stream import StreamingDataset

    if isinstance(data, StreamingDataset):
        if split not in data.splits:
            raise DataError(f"unknown split {split!r}; choose train, val or test")
        yield from data.loader(split, batch_size, shuffle=False)
        return
    x, y = data.split(split)
    for i in range(0, len(y), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]


def _outputs(model: Any, batches, backend: str, batch_size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """The model's outputs (eager, or through ``backend``) and the targets, batch by batch."""
    outputs, targets, runner = [], [], None
    for xb, yb in batches:
        if backend == "torch":
            outputs.append(logits_of(model, xb, batch_size, device).cpu())
        else:
            if runner is None:
                from trimnet.runtime import load_runner

                runner = load_runner(backend, model, xb[:1])
            outputs.append(torch.from_numpy(np.asarray(runner.run(xb.numpy()))).float())
        targets.append(yb)
    if not targets:
        return torch.zeros(0), torch.zeros(0)
    return torch.cat(outputs), torch.cat(targets)


def evaluate(model: Any, data: Any = None, split: str = "test", *, backend: str = "torch",
             batch_size: int = 1024, device: torch.device | None = None, task: Any = None,
             metric: Any = None) -> Evaluation:
    """The task's metric and loss on ``split``; for classification also accuracy, per-class
    precision/recall/F1 and the confusion matrix, for regression MAE, RMSE and R².

    ``model`` may be an ``nn.Module``, an ``Artifact`` or a run directory; with an artifact
    and no ``data``, the dataset it was trained on is loaded again (same split seed).
    ``data`` may also be a ``DataLoader`` (or a trio). ``backend`` other than ``torch`` runs
    the model through that runtime. ``metric(outputs, targets)`` replaces the task's metric.
    """
    from trimnet.data.loaders import as_dataset
    from trimnet.tasks import task_for

    from trimnet.artifact import resolve_model

    resolved = resolve_model(model)
    model, artifact = resolved.module, resolved.artifact
    data = as_dataset(data, task=task if isinstance(task, str) else None)
    if data is None:
        if artifact is None or not artifact.meta.get("data"):
            raise DataError("evaluate needs a dataset; pass data= (or a run directory that records its data)")
        data = dataset_of(artifact)
    task = task_for(data, task if task is not None else (artifact.task if artifact is not None else None),
                    metric=metric)
    outputs, y = _outputs(model, split_batches(data, split, batch_size), backend, batch_size, device)
    if len(y) == 0:
        raise DataError(f"the {split} split of {data.name} is empty; evaluate another split")
    task.check_outputs(outputs, data)
    loss = float(task.loss(outputs, y))
    ev = Evaluation(accuracy=None, loss=loss, per_class={}, confusion=[], samples=len(y), split=split,
                    backend=backend, task=task.name, metric=task.metric_name, score=task.metric(outputs, y))
    if task.name == "classification":
        _classification_report(ev, outputs, y, data)
    elif task.name == "regression":
        from trimnet.tasks import regression_report

        ev.extra = regression_report(outputs, y)
    return ev


def _classification_report(ev: Evaluation, outputs: torch.Tensor, y: torch.Tensor, data: Any) -> None:
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    from trimnet.tasks import accuracy

    pred = outputs.argmax(1)
    truth = y.numpy()
    labels = list(range(data.num_classes))
    precision, recall, f1, support = precision_recall_fscore_support(truth, pred.numpy(), labels=labels,
                                                                     zero_division=0)
    ev.per_class = {name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                           "support": int(support[i])} for i, name in enumerate(data.class_names)}
    ev.confusion = confusion_matrix(truth, pred.numpy(), labels=labels).tolist()
    ev.accuracy = accuracy(pred, y)


def dataset_of(artifact) -> Dataset:
    """Reload the dataset an artifact was trained on, with the same splits."""
    from trimnet.config import DataConfig
    from trimnet.data import load_dataset

    meta = artifact.meta["data"]
    fields = {k: meta[k] for k in DataConfig.__dataclass_fields__ if k in meta}
    if meta.get("tokenizer_json"):  # text: tokenize with the run's own tokenizer.json, not a new one
        fields["tokenizer"] = meta["tokenizer_json"]
    data = load_dataset(config=DataConfig(**fields))
    if tuple(data.in_shape) != artifact.in_shape or data.class_names != artifact.class_names:
        raise DataError(f"{fields.get('source')} no longer matches {artifact.path} (shape {data.in_shape} vs "
                        f"{artifact.in_shape}); pass the data explicitly")
    return data


def predict(model: Any, inputs: np.ndarray | torch.Tensor, *, normalize: bool = True,
            batch_size: int = 1024, class_names: list[str] | None = None) -> Predictions:
    """Class predictions (or, for a regression artifact, predicted values) for raw ``inputs``
    (normalized as in training when the model is an artifact; for a text model's artifact, a
    list of strings)."""
    from trimnet.artifact import resolve_model

    resolved = resolve_model(model)
    model, artifact = resolved.module, resolved.artifact
    if artifact is not None and artifact.reads_text and isinstance(inputs, (str, list, tuple)):
        inputs = artifact.encode_text(inputs)  # raw strings -> token ids of the run's tokenizer
    # canonical strides: numpy can hand over (N, 1, H, W) with a stride on the size-1 axis that
    # makes PyTorch pick another conv kernel, and the same samples must give the same probabilities
    x = torch.as_tensor(np.asarray(inputs, dtype=np.float32)).clone(memory_format=torch.contiguous_format)
    if artifact is not None:
        if tuple(x.shape[1:]) != artifact.in_shape:
            raise DataError(f"inputs have shape {tuple(x.shape[1:])} per sample but the model takes "
                            f"{artifact.in_shape}; reshape or resize them")
        if normalize:
            x = artifact.preprocess(x)
        class_names = class_names or artifact.class_names
        if artifact.task.get("name") == "regression":
            out = logits_of(model, x, batch_size).numpy()
            values = out[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out
            return Predictions(labels=[], names=[], probabilities=np.zeros((len(out), 0), np.float32), values=values)
    probs = torch.softmax(logits_of(model, x, batch_size), dim=1).numpy()
    labels = probs.argmax(1).tolist()
    names = [class_names[i] if class_names else str(i) for i in labels]
    return Predictions(labels=labels, names=names, probabilities=probs)
