"""``idx:PATH`` — MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST), gzipped or not.

PATH is a directory with ``train-images-idx3-ubyte[.gz]`` and ``train-labels-idx1-ubyte[.gz]``
(and optionally the ``t10k-`` pair, which becomes the test split), or one images file whose
labels file sits beside it (``images-idx3`` replaced by ``labels-idx1`` in the name).
Images are scaled to [0, 1] as (N, 1, H, W); classes are "0" .. the largest label.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dims
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dim
# Both spellings are in the wild: the original "-idx3-" and "train-images.idx3-ubyte" re-uploads.
SEPARATORS = ("-", ".")


@register_source("idx")
def read(rest: str, cfg: DataConfig) -> RawData:
    if not rest:
        raise DataError("idx: needs a directory or an images file, e.g. idx:data/mnist")
    path = Path(rest).expanduser()
    if path.is_dir():
        train = _find(path, "train")
        if train is None:
            raise DataError(f"{path} holds no train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]; "
                            "point idx: at the folder with the MNIST files")
        test = _find(path, "t10k")
    elif path.is_file():
        train, test = (path, _labels_beside(path)), None
    else:
        raise DataError(f"{path} does not exist; check the path after 'idx:'")

    x, y = _pair(*train)
    test_xy = _pair(*test) if test else None
    if test_xy is not None and test_xy[0].shape[1:] != x.shape[1:]:
        raise DataError(f"{test[0].name} holds {test_xy[0].shape[2:]} images but {train[0].name} holds "
                        f"{x.shape[2:]}; train and test images must have the same size")
    top = int(max(y.max(initial=0), test_xy[1].max(initial=0) if test_xy else 0))
    return RawData(x=x, y=y, class_names=[str(i) for i in range(top + 1)], kind="image",
                   origin=str(train[0]), test=test_xy)


def _find(d: Path, prefix: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of one split, preferring uncompressed ones; None if absent."""
    found = []
    for kind in ("images-idx3", "labels-idx1"):
        names = [f"{prefix}-{kind.replace('-', sep)}-ubyte{gz}" for gz in ("", ".gz") for sep in SEPARATORS]
        hits = [d / n for n in names if (d / n).is_file()]
        found.append(hits[0] if hits else None)
    images, labels = found
    if images is None and labels is None:
        return None
    if images is None or labels is None:
        have, missing = (images, "labels") if labels is None else (labels, "images")
        raise DataError(f"{d} has {have.name} but no {prefix} {missing} file beside it; IDX data needs both")
    return images, labels


def _labels_beside(images: Path) -> Path:
    for sep in SEPARATORS:
        key = f"images{sep}idx3"
        if key in images.name:
            base = images.with_name(images.name.replace(key, f"labels{sep}idx1"))
            for candidate in (base, Path(str(base) + ".gz"), Path(str(base).removesuffix(".gz"))):
                if candidate.is_file():
                    return candidate
            raise DataError(f"{images} has no labels file beside it; expected {base.name}")
    raise DataError(f"{images.name} is not named like an IDX images file (…images-idx3-ubyte); "
                    "pass the images file or the folder holding it")


def _pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x = _parse(images, IMAGES_MAGIC, "images")
    y = _parse(labels, LABELS_MAGIC, "labels")
    if len(x) != len(y):
        raise DataError(f"{images.name} holds {len(x)} images but {labels.name} holds {len(y)} labels; "
                        "use the matching pair of files")
    x = x.astype(np.float32)[:, None]
    x /= 255.0
    return x, y.astype(np.int64)


def _parse(path: Path, magic: int, what: str) -> np.ndarray:
    data = _bytes(path)
    if len(data) < 4:
        raise DataError(f"{path} is truncated: {len(data)} bytes, not even an IDX header; download it again")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path} starts with magic number 0x{found:08X}, not 0x{magic:08X} (IDX {what}, "
                        f"unsigned bytes); is it the {what} file, and not a damaged download?")
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path} is truncated inside its header; download it again")
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        state = "truncated" if len(data) < expected else "longer than its header says"
        raise DataError(f"{path} is {state}: its header promises {dims} values ({expected} bytes) "
                        f"but the file has {len(data)} bytes; download it again")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":  # gzip by content, not by name: some mirrors serve .gz already unpacked
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path} is a damaged gzip file ({exc}); download it again") from None
