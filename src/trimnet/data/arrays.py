"""A Dataset from arrays in memory (any task): ``from_arrays(x, y, task="regression")``."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from trimnet.data.dataset import Dataset, Normalization, RawData, build
from trimnet.errors import DataError


def from_arrays(x: Any, y: Any, *, task: str = "classification", class_names: Sequence[str] | None = None,
                name: str = "arrays", val_split: float = 0.15, test_split: float = 0.15, seed: int = 0,
                normalize: bool = True, shipped_test: tuple[Any, Any] | None = None) -> Dataset:
    """Split (seeded) and standardize ``x`` (fit on the train split); ``y``: class indices or real targets."""
    from trimnet.tasks import get_task

    get_task(task)  # an unknown task is named before any work
    x = np.ascontiguousarray(np.asarray(x, dtype=np.float32))
    kind = "image" if x.ndim == 4 else "tabular"
    if task == "classification":
        y = np.asarray(y)
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError("classification labels must be integer class indices; pass task='regression' "
                            "for real-valued targets")
        names = list(class_names) if class_names else [str(i) for i in range(int(y.max()) + 1)]
        test = None if shipped_test is None else (np.ascontiguousarray(shipped_test[0], dtype=np.float32),
                                                   np.asarray(shipped_test[1]).astype(np.int64))
        raw = RawData(x=x, y=y.astype(np.int64), class_names=names, kind=kind, origin=name, test=test)
        data = build(raw, name=name, val_split=val_split, test_split=test_split, seed=seed)
        data.info["in_memory"] = True
        return data
    y = np.asarray(y, dtype=np.float32)
    if len(x) != len(y):
        raise DataError(f"{name}: {len(x)} inputs but {len(y)} targets; they must have the same length")
    if len(x) < 3:
        raise DataError(f"{name}: {len(x)} samples cannot be split into train, val and test; add samples")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise DataError(f"{name}: inputs or targets hold NaN or inf values; clean or drop those rows")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test, n_val = int(round(test_split * len(x))), int(round(val_split * len(x)))
    parts = np.split(order, [n_test, n_test + n_val])
    test, val, train = (torch.from_numpy(x[i]) for i in parts)
    targets = [torch.from_numpy(y[i]) for i in parts]
    if shipped_test is not None:  # the source's own test split; the rest is train + validation
        n_val = int(round(val_split * len(x)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        val, train = torch.from_numpy(x[val_idx]), torch.from_numpy(x[train_idx])
        test = torch.from_numpy(np.ascontiguousarray(shipped_test[0], dtype=np.float32))
        targets = [torch.from_numpy(np.asarray(shipped_test[1], dtype=np.float32)),
                   torch.from_numpy(y[val_idx]), torch.from_numpy(y[train_idx])]
    norm = _fit(train, kind) if normalize else identity(train)
    return Dataset(name=name, x_train=norm.apply(train), y_train=targets[2], x_val=norm.apply(val), y_val=targets[1],
                   x_test=norm.apply(test), y_test=targets[0], class_names=list(class_names or []), kind=kind,
                   normalization=norm, info={"in_memory": True, "seed": seed, "val_split": val_split,
                                             "test_split": test_split}, task=task)


def regression_from_raw(raw: RawData, *, name: str, val_split: float, test_split: float, seed: int) -> Dataset:
    """A reader's real-valued targets (``data.task: regression``) split and standardized as ``from_arrays`` does."""
    if raw.targets is None:
        raise DataError(f"{raw.origin}: data.task regression reads csv and npz sources (numeric features, a "
                        "numeric target); use data.task classification for this source")
    data = from_arrays(raw.x, raw.targets, task="regression", name=name, val_split=val_split,
                       test_split=test_split, seed=seed, shipped_test=raw.test)
    del data.info["in_memory"]  # a file: the artifact records the source, as for classification
    data.info["origin"] = raw.origin
    return data


def _fit(x: torch.Tensor, kind: str) -> Normalization:
    """Per channel (images) or per feature (tables); other layouts are left as they are."""
    if kind != "image" and x.dim() != 2:
        return identity(x)
    dims = (0, 2, 3) if kind == "image" else (0,)
    mean, std = x.mean(dim=dims), x.std(dim=dims)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)
    return Normalization(mean=mean.tolist(), std=std.tolist(), axis=1)


def identity(x: torch.Tensor) -> Normalization:
    """No standardization (the data comes prepared): zero mean, unit std along axis 1."""
    channels = int(x.shape[1]) if x.dim() > 1 else 1
    return Normalization(mean=[0.0] * channels, std=[1.0] * channels, axis=1)
