"""``torch.utils.data`` input: a DataLoader (or a (train, val, test) trio of them) as a Dataset.

The loaders are iterated once and their batches kept in memory as tensors, so training,
pruning and the search see the same fixed splits and stay exactly reproducible. Their
own transforms are applied as they are; no normalization is added. One loader is split
into train/val/test (seeded); a trio keeps its splits. Integer targets mean
classification, real ones regression (or say ``task=``).
"""

from __future__ import annotations

from typing import Any

import torch

from trimnet.data.dataset import Dataset
from trimnet.errors import DataError


def is_loader_like(data: Any) -> bool:
    from torch.utils.data import DataLoader
    from torch.utils.data import Dataset as TorchDataset

    if isinstance(data, (DataLoader, TorchDataset)):
        return True
    return isinstance(data, (tuple, list)) and len(data) == 3 and all(
        isinstance(d, (DataLoader, TorchDataset)) for d in data)


def as_dataset(data: Any, *, task: str | None = None, val_split: float = 0.15, test_split: float = 0.15,
               seed: int = 0) -> Any:
    """``data`` itself when it is a trimnet Dataset (or None); loaders and torch datasets read into one."""
    if data is None or isinstance(data, Dataset) or not is_loader_like(data):
        return data
    if isinstance(data, (tuple, list)):
        parts = [_read(d) for d in data]
        (x_train, y_train), (x_val, y_val), (x_test, y_test) = parts
    else:
        x, y = _read(data)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
        n_test, n_val = int(round(test_split * len(x))), int(round(val_split * len(x)))
        if len(x) - n_test - n_val < 1:
            raise DataError(f"the loader holds {len(x)} samples: too few to split; pass (train, val, test) loaders")
        test, val, train = order[:n_test], order[n_test:n_test + n_val], order[n_test + n_val:]
        x_train, y_train, x_val, y_val, x_test, y_test = x[train], y[train], x[val], y[val], x[test], y[test]
    floating = y_train.is_floating_point()
    task = task or ("regression" if floating else "classification")
    if task == "classification":
        if floating:
            raise DataError("the loader's targets are real numbers but the task is classification; "
                            "give class indices (int64) or pass task='regression'")
        top = int(max(int(t.max()) if len(t) else 0 for t in (y_train, y_val, y_test)))
        class_names = [str(i) for i in range(top + 1)]
    else:
        class_names = []
        y_train, y_val, y_test = (t.float() for t in (y_train, y_val, y_test))
    from trimnet.data.arrays import identity

    return Dataset(name=type(data).__name__, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val,
                   x_test=x_test, y_test=y_test, class_names=class_names,
                   kind="image" if x_train.dim() == 4 else "tabular", normalization=identity(x_train),
                   info={"in_memory": True, "seed": seed}, task=task)


def _read(source: Any) -> tuple[torch.Tensor, torch.Tensor]:
    from torch.utils.data import DataLoader

    loader = source if isinstance(source, DataLoader) else DataLoader(source, batch_size=256)
    xs, ys = [], []
    for i, batch in enumerate(loader):
        if isinstance(batch, dict):
            batch = (batch.get("x", batch.get("input")), batch.get("y", batch.get("label")))
        if not isinstance(batch, (tuple, list)) or len(batch) != 2 or batch[0] is None or batch[1] is None:
            raise DataError(f"batch {i} of the loader is not (inputs, targets); make the dataset return "
                            "(x, y) pairs (or dicts with 'x' and 'y')")
        xs.append(torch.as_tensor(batch[0]).float())
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        raise DataError("the loader gave no batches; point it at a dataset with samples")
    return torch.cat(xs).contiguous(), torch.cat(ys)
