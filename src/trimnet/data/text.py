"""Text classification data: ``text:PATH`` and CSV text columns (``csv:F --data.text COLUMN``).

``text:FILE``: one sample per line, ``label<TAB>text`` (the layout of the SMS Spam Collection).
``text:DIR``: ``DIR/<class>/*.txt``, one document per file, or ``DIR/train/<class>/...`` with an
optional ``DIR/test/<class>/...`` that becomes the test split.

Samples stay raw strings until the split; then a tokenizer is trained on the training part
only (``data.tokenizer``: bpe or wordpiece, at most ``data.vocab_size`` tokens) and every split
becomes ``(N, data.seq_len)`` token ids (float32, padded with id 0, truncated). The tokenizer's
JSON travels in ``Dataset.info["tokenizer_json"]``; a run directory keeps it as ``tokenizer.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import Dataset, RawData, _split
from trimnet.errors import DataError

TEXT_SUFFIXES = (".txt", ".text", ".md")
TOKENIZER_KEY = "tokenizer_json"  # where Dataset.info (and a run's meta["data"] in memory) holds it


@dataclass
class TextSamples:
    """Raw strings of a text source and how to tokenize them."""

    texts: list[str]
    test_texts: list[str] | None
    seq_len: int
    vocab_size: int
    tokenizer: str  # bpe | wordpiece | tokenizer.json path or JSON text
    column: str | None = None  # csv: the text column
    label: str | None = None  # csv: the label column as the user named it


def text_raw(texts: list[str], labels: list[str], cfg: DataConfig, origin: str, *,
             test: tuple[list[str], list[str]] | None = None, class_names: list[str] | None = None,
             column: str | None = None, label: str | None = None) -> RawData:
    """RawData of kind "text" from strings and their string labels (classes sorted, numbers as numbers)."""
    from trimnet.data.csv import _encode_labels

    if class_names is None:
        class_names, y = _encode_labels(labels + (test[1] if test else []))
    else:
        index = {c: i for i, c in enumerate(class_names)}
        y = np.array([index[v] for v in labels + (test[1] if test else [])], dtype=np.int64)
    n = len(texts)
    y_train, y_test = y[:n], y[n:]
    raw_test = (np.zeros((len(test[0]), 0), np.float32), y_test) if test else None
    samples = TextSamples(texts=list(texts), test_texts=list(test[0]) if test else None, seq_len=cfg.seq_len,
                          vocab_size=cfg.vocab_size, tokenizer=cfg.tokenizer, column=column, label=label)
    return RawData(x=np.zeros((n, 0), np.float32), y=y_train, class_names=class_names, kind="text",
                   origin=origin, test=raw_test, text=samples)


def build_text(raw: RawData, *, name: str, val_split: float, test_split: float, seed: int) -> Dataset:
    """Split (stratified, seeded), train the tokenizer on the training part, tokenize every split."""
    from sklearn.model_selection import train_test_split

    from trimnet.data import tokenizer as T

    s: TextSamples = raw.text
    idx = np.arange(len(raw.y))
    if raw.test is not None:
        rest, y_rest = idx, raw.y
        test_texts, y_test = s.test_texts, raw.test[1]
    else:
        rest, test_idx, y_rest, y_test = _split(idx, raw.y, test_split, seed, raw.origin, train_test_split)
        test_texts = [s.texts[i] for i in test_idx]
    share = val_split / (1.0 - (0 if raw.test is not None else test_split))
    train_idx, val_idx, y_train, y_val = (_split(rest, y_rest, share, seed, raw.origin, train_test_split)
                                          if val_split > 0 else (rest, rest[:0], y_rest, y_rest[:0]))
    train_texts = [s.texts[i] for i in train_idx]
    if s.tokenizer in T.KINDS:
        tokenizer_json = T.train_tokenizer(train_texts, s.tokenizer, s.vocab_size, s.seq_len)
    else:
        tokenizer_json = T.load_tokenizer(s.tokenizer, s.seq_len).to_str()
    tok = T.load_tokenizer(tokenizer_json, s.seq_len)
    x_train, x_val, x_test = (torch.from_numpy(T.encode(tok, texts)) for texts in
                              (train_texts, [s.texts[i] for i in val_idx], test_texts))
    info = {"origin": raw.origin, "seed": seed, "val_split": val_split, "test_split": test_split,
            "seq_len": s.seq_len, "vocab_size": s.vocab_size, "vocab": T.vocab_size(tok), TOKENIZER_KEY: tokenizer_json}
    if s.column is not None:  # what reloading the CSV needs (tn.train records info without the config)
        info.update(text=s.column, label=s.label)
    return Dataset(name=name, x_train=x_train, y_train=torch.from_numpy(np.asarray(y_train, np.int64)),
                   x_val=x_val, y_val=torch.from_numpy(np.asarray(y_val, np.int64)),
                   x_test=x_test, y_test=torch.from_numpy(np.asarray(y_test, np.int64)),
                   class_names=list(raw.class_names), kind="text", normalization=None, info=info)


def read_csv_text(path: Path, cfg: DataConfig) -> RawData:
    """``csv:F`` with ``data.text`` set: one column of raw text, one label column (``data.label`` or the last other one)."""
    from trimnet.data.csv import _read_rows

    header, rows, lines = _read_rows(path)
    name = path.name
    if cfg.text not in header:
        raise DataError(f"{name} has no column {cfg.text!r} for data.text; its columns are: " + ", ".join(header))
    text_col = header.index(cfg.text)
    if cfg.label is not None:
        if cfg.label not in header:
            raise DataError(f"{name} has no column {cfg.label!r} for data.label; its columns are: "
                            + ", ".join(header))
        label_col = header.index(cfg.label)
    else:
        others = [i for i in range(len(header)) if i != text_col]
        if not others:
            raise DataError(f"{name} has only the text column {cfg.text!r}; add a label column")
        label_col = others[-1]
    if label_col == text_col:
        raise DataError(f"{name}: data.text and data.label both name column {cfg.text!r}; pick two columns")
    for row, line in zip(rows, lines):
        if not row[label_col]:
            raise DataError(f"{name} row {line}, column {header[label_col]!r} is empty; every row needs a label")
    return text_raw([r[text_col] for r in rows], [r[label_col] for r in rows], cfg, str(path),
                    column=cfg.text, label=cfg.label)


@register_source("text")
def read(rest: str, cfg: DataConfig) -> RawData:
    if not rest:
        raise DataError("text: needs a file (label<TAB>text per line) or a directory (DIR/<class>/*.txt)")
    path = Path(rest).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path after 'text:'")
    if path.is_dir():
        return _read_dir(path, cfg)
    texts, labels = read_lines(path)
    return text_raw(texts, labels, cfg, str(path))


def read_lines(path: Path) -> tuple[list[str], list[str]]:
    """``label<TAB>text`` lines (blank lines skipped) -> texts, labels."""
    texts, labels = [], []
    try:
        with path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                label, tab, text = line.partition("\t")
                if not tab or not label.strip():
                    raise DataError(f"{path.name} line {number} is not 'label<TAB>text'; put the class, a tab, "
                                    "then the text on each line (or use csv: with --data.text COLUMN)")
                labels.append(label.strip())
                texts.append(text)
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8") from None
    if not texts:
        raise DataError(f"{path.name} holds no samples; add lines of 'label<TAB>text'")
    return texts, labels


def _read_dir(root: Path, cfg: DataConfig) -> RawData:
    train, test = root / "train", root / "test"
    if not (train.is_dir() and _class_dirs(train)):
        train, test = root, None
    elif not test.is_dir():
        test = None
    classes = _class_dirs(train)
    if not classes:
        raise DataError(f"{root} has no class subfolders; put each class's .txt files in DIR/<class name>/")
    texts, labels = _documents(train, classes)
    held = None
    if test is not None:
        unknown = [c for c in _class_dirs(test) if c not in classes]
        if unknown:
            raise DataError(f"{test / unknown[0]} is a test class with no training folder; training classes are: "
                            + ", ".join(classes))
        held = _documents(test, [c for c in classes if (test / c).is_dir()], allow_empty=True)
    return text_raw(texts, labels, cfg, str(root), test=held, class_names=classes)


def _class_dirs(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def text_files(d: Path) -> list[Path]:
    return sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES
                  and not any(part.startswith(".") for part in p.relative_to(d).parts))


def _documents(d: Path, classes: list[str], allow_empty: bool = False) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for c in classes:
        files = text_files(d / c)
        if not files and not allow_empty:
            raise DataError(f"{d / c} holds no text files ({', '.join(TEXT_SUFFIXES)}); add some or remove the folder")
        for f in files:
            try:
                texts.append(f.read_text(encoding="utf-8-sig"))
            except UnicodeDecodeError:
                raise DataError(f"{f} is not UTF-8 text; save it as UTF-8") from None
            labels.append(c)
    return texts, labels


def read_texts(path: str | Path, column: str | None = None) -> tuple[list[str], list[str]]:
    """Raw texts to predict on, and a name per text: a CSV's ``column`` (default "text"), a .txt
    file's lines (a ``label<TAB>`` prefix is not stripped: one line is one text), or a folder of .txt files."""
    import csv

    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; pass a .csv with a text column, a .txt file or a folder of .txt files")
    if path.is_dir():
        files = text_files(path)
        if not files:
            raise DataError(f"{path} holds no text files ({', '.join(TEXT_SUFFIXES)})")
        return [f.read_text(encoding="utf-8-sig", errors="replace") for f in files], [str(f) for f in files]
    if path.suffix.lower() == ".csv":
        column = column or "text"
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or column not in reader.fieldnames:
                raise DataError(f"{path.name} has no column {column!r} of text; its columns are: "
                                + ", ".join(reader.fieldnames or []) + " (pass --text-column)")
            texts = [row[column] or "" for row in reader]
        return texts, [str(i) for i in range(len(texts))]
    try:
        texts = [line.rstrip("\r\n") for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path.name} is not UTF-8 text; save it as UTF-8") from None
    return texts, [str(i) for i in range(len(texts))]
