"""Data larger than memory: image folders and text files read from disk per sample.

``load_dataset("folder:DIR", stream=True)`` (or ``text:FILE``) returns a ``StreamingDataset``
instead of in-memory tensors: only the file list, the labels and (for text) each line's byte
offset are held; ``loader(split, batch_size, workers=N)`` gives a ``torch.utils.data.DataLoader``
whose workers decode images (or tokenize lines) batch by batch. Peak memory then grows with
the batch, not with the dataset (benchmarks/data_memory.py measures it).

The splits are the in-memory reader's (same stratified, seeded split of the same file
order). Image normalization is fit on up to ``NORM_SAMPLES`` training images, drawn with the
split seed; the text tokenizer is trained on the training lines, streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader
from torch.utils.data import Dataset as TorchDataset

from trimnet.config import DataConfig
from trimnet.data.dataset import Normalization, _split
from trimnet.errors import DataError

NORM_SAMPLES = 512
SPLITS = ("train", "val", "test")


class ImageFiles(TorchDataset):
    """(image tensor, label) per file: decoded, resized, scaled to [0, 1] and normalized on access."""

    def __init__(self, files: list[Path], labels: np.ndarray, gray: bool, size: tuple[int, int],
                 normalization: Normalization | None = None):
        self.files, self.labels, self.gray, self.size = files, labels, gray, size
        self.normalization = normalization

    def __len__(self) -> int:
        return len(self.files)

    def decode(self, i: int) -> np.ndarray:
        from trimnet.data.folder import _decode

        from PIL import Image

        return _decode([self.files[i]], self.gray, self.size, Image)[0]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = torch.from_numpy(self.decode(i))
        if self.normalization is not None:
            x = self.normalization.apply(x[None])[0]
        return x, int(self.labels[i])


class TextLines(TorchDataset):
    """(token ids, label) per ``label<TAB>text`` line, read at its byte offset and tokenized on access."""

    def __init__(self, path: Path, offsets: np.ndarray, labels: np.ndarray, tokenizer_json: str, seq_len: int):
        self.path, self.offsets, self.labels = path, offsets, labels
        self.tokenizer_json, self.seq_len = tokenizer_json, seq_len
        self._tok = None  # made in each worker process from the JSON, never pickled

    def __len__(self) -> int:
        return len(self.offsets)

    def text(self, i: int) -> str:
        with open(self.path, "rb") as f:
            f.seek(int(self.offsets[i]))
            line = f.readline().decode("utf-8-sig").rstrip("\r\n")
        return line.partition("\t")[2]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from trimnet.data import tokenizer as T

        if self._tok is None:
            self._tok = T.load_tokenizer(self.tokenizer_json, self.seq_len)
        return torch.from_numpy(T.encode(self._tok, [self.text(i)])[0]), int(self.labels[i])


@dataclass
class StreamingDataset:
    """The splits of a source as on-disk ``torch`` datasets, with what a model needs to know of them."""

    name: str
    splits: dict[str, TorchDataset]
    class_names: list[str]
    kind: str
    in_shape: tuple[int, ...]
    normalization: Normalization | None
    info: dict = field(default_factory=dict)
    workers: int = 2  # DataLoader worker processes that decode batches (data.workers)
    task: str = "classification"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def loader(self, split: str = "train", batch_size: int = 64, *, shuffle: bool | None = None,
               workers: int | None = None, seed: int = 0) -> DataLoader:
        """A DataLoader of (x, y) batches; shuffled (seeded) for the train split unless told otherwise."""
        if split not in self.splits:
            raise DataError(f"unknown split {split!r}; choose train, val or test")
        shuffle = split == "train" if shuffle is None else shuffle
        workers = self.workers if workers is None else workers
        return DataLoader(self.splits[split], batch_size=batch_size, shuffle=shuffle, num_workers=workers,
                          generator=torch.Generator().manual_seed(seed) if shuffle else None,
                          persistent_workers=workers > 0, pin_memory=False)

    def example_inputs(self, batch: int = 1) -> torch.Tensor:
        test = self.splits["test"] if len(self.splits["test"]) else self.splits["train"]
        return torch.stack([test[i][0] for i in range(min(batch, len(test)))])

    def __repr__(self) -> str:
        sizes = ", ".join(f"{s}={len(d)}" for s, d in self.splits.items())
        return f"StreamingDataset({self.name!r}, in_shape={self.in_shape}, classes={self.num_classes}, {sizes})"


def load_streaming(cfg: DataConfig) -> StreamingDataset:
    scheme, _, rest = cfg.source.partition(":")
    if scheme == "folder":
        data = _folder(rest, cfg)
    elif scheme == "text" and Path(rest).is_file():
        data = _text_file(rest, cfg)
    else:
        data = None
    if data is not None:
        data.workers = cfg.workers
        data.info["stream"] = True  # recorded in the artifact: the run read its data from disk
        return data
    raise DataError(f"data.stream reads folder:DIR and text:FILE sources; {cfg.source!r} is loaded into memory "
                    "(drop --data.stream)")


def _split_indices(labels: np.ndarray, test_labels: np.ndarray | None, cfg: DataConfig,
                   origin: str) -> dict[str, np.ndarray]:
    """Index arrays per split, as ``dataset.build`` splits (test indices count past the training files)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(labels))
    if test_labels is not None:
        rest, y_rest, test = idx, labels, np.arange(len(labels), len(labels) + len(test_labels))
        share = cfg.val_split
    else:
        rest, test, y_rest, _ = _split(idx, labels, cfg.test_split, cfg.seed, origin, train_test_split)
        share = cfg.val_split / (1.0 - cfg.test_split)
    if cfg.val_split > 0:
        train, val, _, _ = _split(rest, y_rest, share, cfg.seed, origin, train_test_split)
    else:
        train, val = rest, rest[:0]
    return {"train": np.asarray(train), "val": np.asarray(val), "test": np.asarray(test)}


def _folder(rest: str, cfg: DataConfig) -> StreamingDataset:
    from PIL import Image

    from trimnet.data import folder as F
    from trimnet.data.dataset import check_raw, RawData

    root = F._directory(rest)
    train_dir, test_dir = F._layout(root)
    class_names = F._class_dirs(train_dir)
    files, y = F._list_images(train_dir, class_names)
    test_files, test_y = F._list_images(test_dir, class_names, test=True) if test_dir else ([], [])
    labels = np.asarray(y, dtype=np.int64)
    test_labels = np.asarray(test_y, dtype=np.int64) if test_dir else None
    check_raw(RawData(x=np.zeros((len(labels), 0), np.float32), y=labels, class_names=class_names, kind="image",
                      origin=str(root), test=(np.zeros((len(test_y), 0), np.float32), test_labels)
                      if test_dir else None))
    # One file's header fixes the mode and size (reading every header would touch every file
    # before training starts); other sizes are resized, as data.image_size does.
    mode, first_size = F._header(files[0], Image)
    gray = mode in F.GRAY_MODES
    size = (cfg.image_size, cfg.image_size) if cfg.image_size else first_size
    every = files + test_files
    every_y = np.concatenate([labels, test_labels]) if test_labels is not None else labels
    parts = _split_indices(labels, test_labels, cfg, str(root))
    raw = ImageFiles(every, every_y, gray, size)
    rng = np.random.default_rng(cfg.seed)
    sample = rng.choice(parts["train"], size=min(NORM_SAMPLES, len(parts["train"])), replace=False)
    pixels = np.stack([raw.decode(int(i)) for i in sample])
    std = pixels.std(axis=(0, 2, 3), ddof=1)  # as torch.std in the in-memory reader
    norm = Normalization(mean=pixels.mean(axis=(0, 2, 3)).tolist(), std=np.where(std < 1e-8, 1.0, std).tolist())
    splits = {s: ImageFiles([every[i] for i in parts[s]], every_y[parts[s]], gray, size, norm) for s in SPLITS}
    return StreamingDataset(name=cfg.source, splits=splits, class_names=class_names, kind="image",
                            in_shape=(1 if gray else 3, size[1], size[0]), normalization=norm,
                            info={"origin": str(root), "seed": cfg.seed, "normalization_samples": len(sample)})


def _scan_lines(path: Path) -> tuple[np.ndarray, list[str]]:
    """Byte offset and label of every ``label<TAB>text`` line; the texts themselves are not kept."""
    offsets, labels = [], []
    with open(path, "rb") as f:
        number = 0
        while True:
            at = f.tell()
            line = f.readline()
            if not line:
                break
            number += 1
            if not line.strip():
                continue
            label, tab, _ = line.partition(b"\t")
            if not tab or not label.strip():
                raise DataError(f"{path.name} line {number} is not 'label<TAB>text'; put the class, a tab, "
                                "then the text on each line")
            offsets.append(at)
            labels.append(label.decode("utf-8-sig", errors="replace").strip())
    if not offsets:
        raise DataError(f"{path.name} holds no samples; add lines of 'label<TAB>text'")
    return np.asarray(offsets, dtype=np.int64), labels


def _text_file(rest: str, cfg: DataConfig) -> StreamingDataset:
    from trimnet.data import tokenizer as T
    from trimnet.data.csv import _encode_labels

    path = Path(rest).expanduser()
    offsets, names = _scan_lines(path)
    class_names, labels = _encode_labels(names)
    if len(class_names) < 2:
        raise DataError(f"{path}: only one class ({class_names[0]}) is present; a classifier needs at least two")
    parts = _split_indices(labels, None, cfg, str(path))
    lines = TextLines(path, offsets, labels, "", cfg.seq_len)

    def train_texts() -> Iterator[str]:
        for i in parts["train"]:
            yield lines.text(int(i))

    if cfg.tokenizer in T.KINDS:
        tokenizer_json = T.train_tokenizer(train_texts(), cfg.tokenizer, cfg.vocab_size, cfg.seq_len)
    else:
        tokenizer_json = T.load_tokenizer(cfg.tokenizer, cfg.seq_len).to_str()
    splits = {s: TextLines(path, offsets[parts[s]], labels[parts[s]], tokenizer_json, cfg.seq_len) for s in SPLITS}
    return StreamingDataset(name=cfg.source, splits=splits, class_names=class_names, kind="text",
                            in_shape=(cfg.seq_len,), normalization=None,
                            info={"origin": str(path), "seed": cfg.seed, "tokenizer_json": tokenizer_json,
                                  "vocab": T.vocab_size(T.load_tokenizer(tokenizer_json))})


def materialize(stream: StreamingDataset, batch_size: int = 256, workers: int = 0,
                limits: dict[str, int] | None = None, seed: int = 0) -> Any:
    """The in-memory ``Dataset`` of a streaming one (for data that fits after all).

    ``limits`` caps a split at that many samples, drawn with ``seed`` (the rest stay on disk):
    ``trimnet run`` searches on such a subset of a streamed source."""
    from torch.utils.data import Subset

    from trimnet.data.dataset import Dataset

    tensors, drawn = {}, {}
    for s in SPLITS:
        split = stream.splits[s]
        cap = (limits or {}).get(s)
        if cap is not None and len(split) > cap:
            keep = np.sort(np.random.default_rng(seed).permutation(len(split))[:cap])
            split, drawn[s] = Subset(split, keep.tolist()), cap
        xs, ys = [], []
        for x, y in DataLoader(split, batch_size=batch_size, shuffle=False, num_workers=workers):
            xs.append(x)
            ys.append(y)
        tensors[s] = (torch.cat(xs) if xs else torch.zeros((0, *stream.in_shape)),
                      torch.cat(ys) if ys else torch.zeros(0, dtype=torch.long))
    info = dict(stream.info)
    if drawn:
        info["subset"] = {s: {"samples": n, "of": len(stream.splits[s])} for s, n in drawn.items()}
    return Dataset(name=stream.name, x_train=tensors["train"][0], y_train=tensors["train"][1],
                   x_val=tensors["val"][0], y_val=tensors["val"][1], x_test=tensors["test"][0],
                   y_test=tensors["test"][1], class_names=stream.class_names, kind=stream.kind,
                   normalization=stream.normalization, info=info)
