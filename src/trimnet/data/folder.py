"""``folder:DIR`` — images in one subfolder per class (the ImageFolder layout).

``DIR/<class>/*.png|jpg|jpeg|bmp`` (subfolders of a class folder count too), or
``DIR/train/<class>/...`` with an optional ``DIR/test/<class>/...`` that becomes the test split.
Images are read as grayscale when every one is grayscale, else as RGB; they are resized to
``data.image_size`` (default: their own size when all agree, else 32) and scaled to [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "F")
DEFAULT_SIZE = 32  # when images differ in size and data.image_size is not set


@register_source("folder")
def read(rest: str, cfg: DataConfig) -> RawData:
    from PIL import Image

    root = _directory(rest)
    train_dir, test_dir = _layout(root)
    class_names = _class_dirs(train_dir)
    files, y = _list_images(train_dir, class_names)
    test_files, test_y = _list_images(test_dir, class_names, test=True) if test_dir else ([], [])

    all_files = files + test_files
    headers = [_header(f, Image) for f in all_files]  # (mode, (width, height)); decodes nothing yet
    gray = all(mode in GRAY_MODES for mode, _ in headers)
    sizes = {size for _, size in headers}
    if cfg.image_size is not None:
        size = (cfg.image_size, cfg.image_size)
    else:
        size = sizes.pop() if len(sizes) == 1 else (DEFAULT_SIZE, DEFAULT_SIZE)

    x = _decode(files, gray, size, Image)
    test = (_decode(test_files, gray, size, Image), np.array(test_y, dtype=np.int64)) if test_dir else None
    return RawData(x=x, y=np.array(y, dtype=np.int64), class_names=class_names, kind="image",
                   origin=str(root), test=test)


def _directory(rest: str) -> Path:
    if not rest:
        raise DataError("folder: needs a directory, e.g. folder:data/images (one subfolder per class)")
    root = Path(rest).expanduser()
    if not root.exists():
        raise DataError(f"{root} does not exist; check the path after 'folder:'")
    if not root.is_dir():
        raise DataError(f"{root} is a file; folder: takes a directory with one subfolder per class")
    return root


def _layout(root: Path) -> tuple[Path, Path | None]:
    """(train dir, test dir or None): DIR/train/<class> when DIR/train holds folders and no images."""
    train = root / "train"
    if train.is_dir() and _subdirs(train) and not _images_in(train, recursive=False):
        test = root / "test"
        return train, (test if test.is_dir() else None)
    return root, None


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def _images_in(d: Path, recursive: bool = True) -> list[Path]:
    found = d.rglob("*") if recursive else d.iterdir()
    # Hidden files are skipped: macOS leaves undecodable "._name.png" twins beside real images.
    return sorted(p for p in found if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(d).parts))


def _class_dirs(d: Path) -> list[str]:
    names = [p.name for p in _subdirs(d)]
    if not names:
        raise DataError(f"{d} has no class subfolders; put the images of each class in DIR/<class name>/")
    return names


def _list_images(d: Path, class_names: list[str], test: bool = False) -> tuple[list[Path], list[int]]:
    if test:
        unknown = [p.name for p in _subdirs(d) if p.name not in class_names]
        if unknown:
            raise DataError(f"{d / unknown[0]} is a test class with no training folder; training classes are: "
                            + ", ".join(class_names))
    files, labels = [], []
    for i, name in enumerate(class_names):
        if test and not (d / name).is_dir():
            continue  # a test split may lack a class
        found = _images_in(d / name)
        if not found:
            raise DataError(f"{d / name} holds no images ({', '.join(EXTENSIONS)}); add images or remove the folder")
        files += found
        labels += [i] * len(found)
    return files, labels


MAX_PIXELS = 1 << 26  # 8192 x 8192: past this an image is a decompression bomb or a scan, not a sample


def _header(path: Path, Image) -> tuple[str, tuple[int, int]]:
    """(mode, (width, height)) from the file's header, without decoding; refuses huge images."""
    try:
        with Image.open(path) as img:
            mode, size = img.mode, img.size
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"{path} cannot be read as an image ({exc}); replace or delete it") from None
    if size[0] * size[1] > MAX_PIXELS:
        raise DataError(f"{path} is {size[0]} x {size[1]} pixels (at most {MAX_PIXELS:,}); "
                        "shrink it or remove it, it may be a decompression bomb")
    return mode, size


def _decode(files: list[Path], gray: bool, size: tuple[int, int], Image) -> np.ndarray:
    channels = 1 if gray else 3
    x = np.empty((len(files), channels, size[1], size[0]), dtype=np.float32)
    for i, path in enumerate(files):
        try:
            with Image.open(path) as img:
                img = img.convert("L" if gray else "RGB")
                if img.size != size:
                    img = img.resize(size, Image.Resampling.BILINEAR)
                pixels = np.asarray(img, dtype=np.float32) / 255.0
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
            raise DataError(f"{path} cannot be decoded ({exc}); replace or delete it") from None
        x[i] = pixels[None] if gray else pixels.transpose(2, 0, 1)
    return x
