"""The one Dataset type every source produces: splits, classes, input shape, normalization."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from trimnet.errors import DataError


@dataclass
class RawData:
    """What a source reader returns, before splitting and normalization."""

    x: np.ndarray  # (N, *in_shape), float32
    y: np.ndarray  # (N,), int64 class indices
    class_names: list[str]
    kind: str  # "image" (N, C, H, W), "tabular" (N, F) or "text" (N, seq_len) token ids
    origin: str  # the file or name it came from, for error messages
    test: tuple[np.ndarray, np.ndarray] | None = None  # a test split the source ships with
    text: Any = None  # kind "text": a trimnet.data.text.TextSamples (raw strings, tokenized after the split)
    targets: np.ndarray | None = None  # data.task regression: the real-valued targets (csv, npz)


@dataclass
class Normalization:
    """Per-channel (images) or per-feature (tabular) standardization, fit on the train split."""

    mean: list[float]
    std: list[float]
    axis: int = 1  # the axis of a batch the statistics run along

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        shape = [1] * x.dim()
        shape[self.axis] = -1
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "axis": self.axis}

    @classmethod
    def from_dict(cls, d: dict) -> "Normalization":
        return cls(mean=list(d["mean"]), std=list(d["std"]), axis=int(d.get("axis", 1)))


@dataclass
class Dataset:
    """Normalized tensors for train / val / test, plus what is needed to read new inputs."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    class_names: list[str]
    kind: str
    normalization: Normalization | None  # None for text: token ids are not standardized
    info: dict = field(default_factory=dict)
    task: str = "classification"  # a name in trimnet.tasks: how targets are read and scored

    @property
    def in_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def num_classes(self) -> int:
        """The model's number of outputs: classes, or target columns of a regression."""
        if self.task == "classification" or self.class_names:
            return len(self.class_names)
        return 1 if self.y_train.dim() == 1 else int(self.y_train.shape[1])

    def split(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        if name not in ("train", "val", "test"):
            raise DataError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def example_inputs(self, batch: int = 1) -> torch.Tensor:
        return self.x_test[:batch].clone()

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, in_shape={self.in_shape}, "
            f"{'classes' if self.task == 'classification' else self.task + ' outputs'}={self.num_classes}, "
            f"train={len(self.y_train)}, val={len(self.y_val)}, test={len(self.y_test)})"
        )


def check_raw(raw: RawData) -> None:
    """The checks every source shares; each message names the file and the fix."""
    _check_arrays(raw.x, raw.y, raw.class_names, raw.origin)
    present = np.unique(raw.y)
    if len(present) < 2:
        raise DataError(
            f"{raw.origin}: only one class ({raw.class_names[int(present[0])]}) is present; "
            "a classifier needs at least two"
        )
    counts = np.bincount(raw.y, minlength=len(raw.class_names))
    empty = [raw.class_names[i] for i, c in enumerate(counts) if c == 0]
    if empty and raw.test is None:
        raise DataError(f"{raw.origin}: class {empty[0]!r} has no samples; add samples or remove the class")
    if raw.test is not None:
        x_test, y_test = raw.test
        _check_arrays(x_test, y_test, raw.class_names, f"{raw.origin} (test split)")
        if x_test.shape[1:] != raw.x.shape[1:]:
            raise DataError(f"{raw.origin}: test samples have shape {x_test.shape[1:]} but training samples "
                            f"{raw.x.shape[1:]}; both splits must have the same shape")


def _check_arrays(x: np.ndarray, y: np.ndarray, class_names: list[str], where: str) -> None:
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{where}: {x.shape[0]} inputs but {y.shape[0]} labels; "
                        "inputs and labels must have the same length")
    if x.shape[0] == 0:
        raise DataError(f"{where}: the dataset is empty; point the source at a file with samples")
    bad_rows = (~np.isfinite(x.reshape(len(x), -1))).any(axis=1)
    if bad_rows.any():
        raise DataError(f"{where}: sample {int(np.argmax(bad_rows))} holds NaN or inf values; "
                        "clean or drop those rows")
    if y.min() < 0 or y.max() >= len(class_names):
        raise DataError(f"{where}: labels must be class indices 0..{len(class_names) - 1}; "
                        f"found {int(y.min())}..{int(y.max())}")


def build(raw: RawData, *, name: str, val_split: float, test_split: float, seed: int,
          image_size: int | None = None) -> Dataset:
    """Split (stratified, seeded), resize images if asked, and fit normalization on train only."""
    from sklearn.model_selection import train_test_split

    check_raw(raw)
    if raw.kind == "text":
        from trimnet.data.text import build_text

        return build_text(raw, name=name, val_split=val_split, test_split=test_split, seed=seed)
    x, y = raw.x.astype(np.float32, copy=False), raw.y.astype(np.int64, copy=False)
    if raw.test is not None:
        x_rest, y_rest = x, y
        x_test, y_test = raw.test[0].astype(np.float32, copy=False), raw.test[1].astype(np.int64, copy=False)
    else:
        x_rest, x_test, y_rest, y_test = _split(x, y, test_split, seed, raw.origin, train_test_split)
    if val_split > 0:
        x_train, x_val, y_train, y_val = _split(
            x_rest, y_rest, val_split / (1.0 - (0 if raw.test is not None else test_split)),
            seed, raw.origin, train_test_split)
    else:
        x_train, y_train = x_rest, y_rest
        x_val, y_val = x_rest[:0], y_rest[:0]

    tensors = [torch.from_numpy(np.ascontiguousarray(a)) for a in (x_train, x_val, x_test)]
    if raw.kind == "image" and image_size is not None and tuple(tensors[0].shape[-2:]) != (image_size, image_size):
        tensors = [_resize(t, image_size) for t in tensors]
    axis_dims = (0, 2, 3) if raw.kind == "image" else (0,)
    mean = tensors[0].mean(dim=axis_dims)
    std = tensors[0].std(dim=axis_dims)
    std = torch.where(std < 1e-8, torch.ones_like(std), std)  # constant features stay as they are
    norm = Normalization(mean=mean.tolist(), std=std.tolist(), axis=1)
    x_train, x_val, x_test = (norm.apply(t).contiguous() for t in tensors)
    return Dataset(
        name=name,
        x_train=x_train, y_train=torch.from_numpy(y_train),
        x_val=x_val, y_val=torch.from_numpy(y_val),
        x_test=x_test, y_test=torch.from_numpy(y_test),
        class_names=list(raw.class_names), kind=raw.kind, normalization=norm,
        info={"origin": raw.origin, "seed": seed, "val_split": val_split, "test_split": test_split},
    )


def _split(x, y, share, seed, origin, train_test_split):
    if share <= 0:
        return x, x[:0], y, y[:0]
    counts = np.bincount(y)
    classes = int((counts > 0).sum())
    held_out = int(round(share * len(y))) if share < 1 else int(share)
    # stratify only where each side can hold every class; sklearn refuses otherwise
    stratify = y if counts[counts > 0].min() >= 2 and min(held_out, len(y) - held_out) >= classes else None
    try:
        return train_test_split(x, y, test_size=share, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise DataError(f"{origin}: cannot split {len(y)} samples with a share of {share:.2f}: {exc}; "
                        "add samples or lower data.test_split / data.val_split") from None


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[0] == 0:
        return x.new_zeros((0, x.shape[1], size, size))
    return torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
