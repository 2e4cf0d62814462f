"""Read inputs to predict on: .npz / .npy arrays, a CSV of features, an image or a folder of images."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trimnet.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff"}


def read_inputs(path: str | Path, in_shape: tuple[int, ...], label: str | None = None) -> tuple[np.ndarray, list[str]]:
    """Raw inputs of shape (N, *in_shape) and a name per input (row number or file name)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a .npz, .npy, .csv, an image or a folder of images")
    if path.is_dir() or path.suffix.lower() in IMAGE_SUFFIXES:
        return _images(path, in_shape)
    if path.suffix.lower() in (".npz", ".npy"):
        x = _array(path)
    elif path.suffix.lower() == ".csv":
        x = _csv_features(path, in_shape, label)
    else:
        raise DataError(f"{path}: unknown input format {path.suffix!r}; use .npz, .npy, .csv or images")
    if x.ndim == len(in_shape):  # a single sample
        x = x[None]
    if tuple(x.shape[1:]) != tuple(in_shape):
        if x.ndim == 2 and len(in_shape) > 1 and x.shape[1] == int(np.prod(in_shape)):
            x = x.reshape((-1, *in_shape))
        else:
            raise DataError(f"{path}: inputs have shape {tuple(x.shape[1:])} per sample but the model "
                            f"takes {tuple(in_shape)}")
    if len(x) == 0:
        raise DataError(f"{path} holds no inputs; add at least one sample")
    if not np.isfinite(x).all():
        raise DataError(f"{path}: inputs hold NaN or inf values; clean them first")
    return x.astype(np.float32), [str(i) for i in range(len(x))]


def _array(path: Path) -> np.ndarray:
    """The inputs array of a .npy or .npz, with the checks ``npz:`` training data gets."""
    import zipfile

    from trimnet.data.npz import _numeric

    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as exc:
        raise DataError(f"{path}: cannot read the array without unpickling ({exc}); save plain numeric arrays") from None
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path} is truncated or not a numpy file ({exc})") from None
    if isinstance(data, np.ndarray):
        return _numeric(data, "the array", path.name)
    with data:
        keys = list(data.keys())
        key = "x" if "x" in keys else keys[0] if len(keys) == 1 else None
        if key is None:
            raise DataError(f"{path} holds arrays {keys}; name the inputs array 'x'")
        try:
            x = data[key]
        except ValueError:
            raise DataError(f"{path.name}: array {key!r} holds Python objects (dtype=object), which would need "
                            "pickle; save it as a numeric array, e.g. x.astype(np.float32)") from None
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            raise DataError(f"{path.name}: array {key!r} cannot be read ({exc}); the file may be truncated") from None
    return _numeric(x, key, path.name)


def _csv_features(path: Path, in_shape: tuple[int, ...], label: str | None) -> np.ndarray:
    """Feature columns of a CSV, read and checked as ``csv:`` training data is (UTF-8, one value per column)."""
    from trimnet.data.csv import _convert_cell_by_cell, _read_rows

    header, body, lines = _read_rows(path)
    width = int(np.prod(in_shape))
    drop = None
    if label is not None and label in header:
        drop = header.index(label)
    elif len(header) == width + 1:
        drop = len(header) - 1  # the label column of a training file; ignored
    keep = [j for j in range(len(header)) if j != drop]
    cells = [[row[j] for j in keep] for row in body]
    try:
        with np.errstate(over="ignore"):
            return np.asarray(cells, dtype=np.float32)
    except ValueError:
        return _convert_cell_by_cell(cells, lines, [header[j] for j in keep], path.name)


def _images(path: Path, in_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    from PIL import Image, UnidentifiedImageError

    from trimnet.data.folder import _header

    if len(in_shape) != 3:
        raise DataError(f"the model takes inputs of shape {in_shape}, not images")
    c, h, w = in_shape
    files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    out = []
    for file in files:
        _header(file, Image)  # the size checks of folder: training data, before decoding anything
        try:
            with Image.open(file) as img:
                img = img.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                arr = np.asarray(img, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(f"{file} cannot be decoded as an image ({exc})") from None
        out.append(arr[None] if c == 1 else arr.transpose(2, 0, 1))
    return np.stack(out), [str(f) for f in files]
