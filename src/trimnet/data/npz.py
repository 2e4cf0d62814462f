"""``npz:PATH`` — a NumPy archive with arrays ``x`` and ``y``, never unpickled.

Optional arrays: ``x_test`` / ``y_test`` (a test split that ships with the data) and
``class_names`` (strings; then ``y`` holds indices into it). Without ``class_names`` the
classes are the sorted unique values of ``y``, which may be integers or strings.
``x`` of 2 dims is tabular (N, F); 3 dims (N, H, W) is one-channel images; 4 dims are images,
(N, C, H, W), or (N, H, W, C) when the last dim is 1 or 3 and the second is not.
uint8 images are scaled to [0, 1], like every other image source.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError


@register_source("npz")
def read(rest: str, cfg: DataConfig) -> RawData:
    path = _file(rest)
    arrays = _load(path)
    name = path.name
    has_test = "x_test" in arrays or "y_test" in arrays
    if has_test and not ("x_test" in arrays and "y_test" in arrays):
        raise DataError(f"{name} has only one of x_test / y_test; save both or neither")

    x, kind, to_layout = _inputs(arrays["x"], name)
    if cfg.task == "regression":  # real-valued targets, one or more per sample
        targets = _targets(arrays["y"], "y", name, len(x))
        test = None
        if has_test:
            x_test = arrays["x_test"]
            if x_test.shape[1:] != arrays["x"].shape[1:]:
                raise DataError(f"{name}: x_test samples have shape {x_test.shape[1:]} but x samples have "
                                f"{arrays['x'].shape[1:]}; both splits need the same sample shape")
            test = (to_layout(_numeric(x_test, "x_test", name), arrays["x"].dtype),
                    _targets(arrays["y_test"], "y_test", name, len(x_test)))
        return RawData(x=x, y=np.zeros(len(x), np.int64), class_names=[], kind=kind, origin=str(path), test=test,
                       targets=targets)
    y = _labels_1d(arrays["y"], "y", name)
    test = None
    if has_test:
        x_test, y_test = arrays["x_test"], _labels_1d(arrays["y_test"], "y_test", name)
        if x_test.shape[1:] != arrays["x"].shape[1:]:
            raise DataError(f"{name}: x_test samples have shape {x_test.shape[1:]} but x samples have "
                            f"{arrays['x'].shape[1:]}; both splits need the same sample shape")
        if len(x_test) != len(y_test):
            raise DataError(f"{name}: {len(x_test)} test inputs but {len(y_test)} test labels; "
                            "x_test and y_test must have the same length")
        test = (to_layout(_numeric(x_test, "x_test", name), arrays["x"].dtype), y_test)

    class_names, encode = _classes(arrays.get("class_names"), [y] + ([test[1]] if test else []), name)
    y = encode(y, "y")
    if test is not None:
        test = (test[0], encode(test[1], "y_test"))
    return RawData(x=x, y=y, class_names=class_names, kind=kind, origin=str(path), test=test)


def _file(rest: str) -> Path:
    if not rest:
        raise DataError("npz: needs a file path, e.g. npz:data/train.npz")
    path = Path(rest).expanduser()
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path after 'npz:'")
    return path


def _load(path: Path) -> dict[str, np.ndarray]:
    name = path.name
    try:
        archive = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{name} is not a readable .npz archive ({exc}); "
                        "save one with np.savez(path, x=x, y=y)") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{name} holds a single array, not an archive; save with np.savez(path, x=x, y=y)")
    with archive:
        missing = [k for k in ("x", "y") if k not in archive.files]
        if missing:
            raise DataError(f"{name} has no array {missing[0]!r}; it holds: {', '.join(archive.files) or '(none)'}; "
                            "save inputs as x and labels as y")
        arrays = {}
        for key in ("x", "y", "x_test", "y_test", "class_names"):
            if key not in archive.files:
                continue
            try:
                arrays[key] = archive[key]
            except ValueError:
                # allow_pickle=False refuses object arrays; we never unpickle.
                raise DataError(f"{name}: array {key!r} holds Python objects (dtype=object), which would need "
                                "pickle; save it as a numeric or string array, e.g. x.astype(np.float32)") from None
            except (OSError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"{name}: array {key!r} cannot be read ({exc}); the file may be truncated") from None
    return arrays


def _targets(y: np.ndarray, key: str, name: str, n: int) -> np.ndarray:
    if y.dtype.kind not in "biuf":
        raise DataError(f"{name}: {key} has dtype {y.dtype}; regression targets must be numbers "
                        "(or use data.task classification)")
    if y.ndim not in (1, 2) or len(y) != n:
        raise DataError(f"{name}: {key} has shape {y.shape} for {n} inputs; save one value (or one row) per sample")
    return y.astype(np.float32)


def _numeric(a: np.ndarray, key: str, name: str) -> np.ndarray:
    if a.dtype.kind not in "biuf":
        raise DataError(f"{name}: {key} has dtype {a.dtype}; inputs must be numbers (bool, int or float)")
    return a


def _inputs(x: np.ndarray, name: str):
    """x as float32 in trimnet's layout, its kind, and the same conversion for x_test."""
    _numeric(x, "x", name)
    if x.ndim == 2:
        kind = "tabular"
    elif x.ndim in (3, 4):
        kind = "image"
    else:
        raise DataError(f"{name}: x has shape {x.shape}; use (N, F) for tables or (N, H, W), (N, C, H, W) "
                        "or (N, H, W, C) for images")
    if 0 in x.shape:
        raise DataError(f"{name}: x has shape {x.shape}; every sample needs at least one value "
                        "(features or pixels) and the file at least one sample")
    channels_last = x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3)

    def to_layout(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        if a.ndim == 3:
            a = a[:, None]
        elif channels_last:
            a = a.transpose(0, 3, 1, 2)
        out = np.ascontiguousarray(a, dtype=np.float32)
        return out / 255.0 if kind == "image" and dtype == np.uint8 else out

    return to_layout(x, x.dtype), kind, to_layout


def _labels_1d(y: np.ndarray, key: str, name: str) -> np.ndarray:
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim == 2:
        raise DataError(f"{name}: {key} has shape {y.shape}, which looks one-hot; save class indices, "
                        f"e.g. {key}.argmax(1)")
    if y.ndim != 1:
        raise DataError(f"{name}: {key} has shape {y.shape}; labels must be one value per sample")
    if y.dtype.kind == "f":
        if not np.all(np.mod(y, 1) == 0):
            raise DataError(f"{name}: {key} holds non-integer values; labels must be class indices or names")
        y = y.astype(np.int64)
    elif y.dtype.kind not in "iubUS":
        raise DataError(f"{name}: {key} has dtype {y.dtype}; labels must be integers or strings")
    return y


def _classes(names: np.ndarray | None, ys: list[np.ndarray], name: str):
    """The class names, and a function that turns labels into indices 0..K-1."""
    if names is None:
        values = np.unique(np.concatenate([_as_str(y) for y in ys]))  # integers sort as numbers
        return [str(v) for v in values], lambda y, key: np.searchsorted(values, _as_str(y)).astype(np.int64)
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataError(f"{name}: class_names must be a 1-D array of strings; got {names.dtype} {names.shape}")
    names = _as_str(names)
    if len(np.unique(names)) != len(names):
        raise DataError(f"{name}: class_names holds a name twice; names must be unique")

    def encode(y: np.ndarray, key: str) -> np.ndarray:
        if y.dtype.kind in "iub":
            bad = y[(y < 0) | (y >= len(names))]
            if len(bad):
                raise DataError(f"{name}: {key} holds {bad[0]} but class_names has {len(names)} entries; "
                                f"labels must be 0..{len(names) - 1}")
            return y.astype(np.int64)
        y = _as_str(y)
        order = np.argsort(names)
        pos = np.minimum(np.searchsorted(names[order], y), len(names) - 1)
        missing = y[names[order][pos] != y]
        if len(missing):
            raise DataError(f"{name}: {key} holds {str(missing[0])!r}, which is not in class_names; "
                            "add it there or save y as indices")
        return order[pos].astype(np.int64)

    return [str(n) for n in names], encode


def _as_str(a: np.ndarray) -> np.ndarray:
    return np.char.decode(a, "utf-8") if a.dtype.kind == "S" else a


