"""``cifar:DIR`` — the CIFAR-10 *binary* version (never the pickled python one).

DIR (or its ``cifar-10-batches-bin`` subfolder) holds ``data_batch_1.bin`` .. ``data_batch_5.bin``
and ``test_batch.bin``: records of 1 label byte + 3072 pixel bytes (3 x 32 x 32, channel-major).
Class names come from ``batches.meta.txt`` when present, else the standard ten.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError

SHAPE = (3, 32, 32)
RECORD = 1 + 3 * 32 * 32
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
SUBFOLDER = "cifar-10-batches-bin"  # what the official cifar-10-binary.tar.gz extracts to


@register_source("cifar")
def read(rest: str, cfg: DataConfig) -> RawData:
    root = _directory(rest)
    batches = sorted(root.glob("data_batch_*.bin"), key=lambda p: _batch_number(p.name))
    if not batches:
        present = ", ".join(sorted(p.name for p in root.iterdir())[:10]) or "(nothing)"
        raise DataError(f"{root} holds no data_batch_*.bin files (it holds: {present}); point cifar: at the "
                        "extracted CIFAR-10 binary version (cifar-10-binary.tar.gz)")
    class_names = _class_names(root)
    x, y = _concat([_records(p, len(class_names)) for p in batches])
    test_file = root / "test_batch.bin"
    test = _records(test_file, len(class_names)) if test_file.is_file() else None
    return RawData(x=x, y=y, class_names=class_names, kind="image", origin=str(root), test=test)


def _directory(rest: str) -> Path:
    if not rest:
        raise DataError("cifar: needs a directory, e.g. cifar:data/cifar-10-batches-bin")
    root = Path(rest).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist; check the path after 'cifar:'")
    if not root.is_dir():
        raise DataError(f"{root} is a file; extract the CIFAR-10 binary archive and pass its folder to cifar:")
    return root / SUBFOLDER if (root / SUBFOLDER).is_dir() else root


def _batch_number(name: str) -> int:
    match = re.search(r"(\d+)", name)
    return int(match.group(1)) if match else 0


def _class_names(root: Path) -> list[str]:
    meta = root / "batches.meta.txt"
    if not meta.is_file():
        return list(CLASSES)
    try:
        names = [line.strip() for line in meta.read_text(encoding="utf-8").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{meta} is not UTF-8 text; it should hold one class name per line") from None
    if not names:
        raise DataError(f"{meta} is empty; write one class name per line, or delete it for the standard names")
    return names


def _records(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    size = path.stat().st_size
    if size == 0 or size % RECORD:
        raise DataError(f"{path} has {size} bytes, not a positive multiple of {RECORD} (1 label byte + 3072 "
                        "pixel bytes); it is truncated or not a CIFAR-10 binary batch")
    records = np.fromfile(path, dtype=np.uint8).reshape(-1, RECORD)
    y = records[:, 0].astype(np.int64)
    if y.max() >= num_classes:
        raise DataError(f"{path} holds label {int(y.max())} but there are {num_classes} class names; "
                        "check batches.meta.txt")
    x = records[:, 1:].reshape(-1, *SHAPE).astype(np.float32)
    x /= 255.0
    return x, y


def _concat(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
