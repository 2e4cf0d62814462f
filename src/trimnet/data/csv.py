"""``csv:PATH`` — a table with a header row: numeric feature columns and one label column.

The label column is ``data.label`` (by name) or the last column. Labels may be integers or
strings; classes are their sorted unique values (integers sorted as numbers). Row numbers in
messages are line numbers as a text editor shows them (the header is line 1).
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError


@register_source("csv")
def read(rest: str, cfg: DataConfig) -> RawData:
    path = _file(rest)
    if cfg.text is not None:  # a column of raw text: token ids after the split (data/text.py)
        from trimnet.data.text import read_csv_text

        return read_csv_text(path, cfg)
    header, rows, lines = _read_rows(path)
    name = path.name
    label_col = _label_column(header, cfg.label, name)
    feature_cols = [i for i in range(len(header)) if i != label_col]
    if not feature_cols:
        raise DataError(f"{name} has only the label column {header[label_col]!r}; add feature columns")

    labels = [row[label_col] for row in rows]
    for row, line in zip(rows, lines):
        if not row[label_col]:
            raise DataError(f"{name} row {line}, column {header[label_col]!r} is empty; "
                            "every row needs a label")
    features = [[row[i] for i in feature_cols] for row in rows]
    try:
        with np.errstate(over="ignore"):  # too large for float32 -> inf, reported below with its cell
            x = np.array(features, dtype=np.float32)
    except ValueError:
        x = _convert_cell_by_cell(features, lines, [header[i] for i in feature_cols], name)
    bad = np.argwhere(~np.isfinite(x))
    if len(bad):
        r, c = (int(v) for v in bad[0])
        raise DataError(f"{name} row {lines[r]}, column {header[feature_cols[c]]!r}: {features[r][c]!r} "
                        "is not a finite float32 number; clean or drop that row")

    if cfg.task == "regression":  # the label column's real values are the targets
        bad = next((i for i, v in enumerate(labels) if not _is_number(v)), None)
        if bad is not None:
            raise DataError(f"{name} row {lines[bad]}, column {header[label_col]!r}: the target {labels[bad]!r} is "
                            "not a number; data.task regression needs real-valued targets "
                            "(or use data.task classification)")
        return RawData(x=x.reshape(len(rows), len(feature_cols)), y=np.zeros(len(rows), np.int64), class_names=[],
                       kind="tabular", origin=str(path), targets=np.array(labels, dtype=np.float32))
    class_names, y = _encode_labels(labels)
    return RawData(x=x.reshape(len(rows), len(feature_cols)), y=y, class_names=class_names,
                   kind="tabular", origin=str(path))


def _file(rest: str) -> Path:
    if not rest:
        raise DataError("csv: needs a file path, e.g. csv:data/train.csv")
    path = Path(rest).expanduser()
    if path.is_dir():
        raise DataError(f"{path} is a directory; csv: takes a .csv file (use folder: for image folders)")
    if not path.is_file():
        raise DataError(f"{path} does not exist; check the path after 'csv:'")
    return path


def _read_rows(path: Path) -> tuple[list[str], list[list[str]], list[int]]:
    """The header, the data rows (cells stripped) and each row's line number; blank lines skipped."""
    name = path.name
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            first = f.readline()
            f.seek(0)
            # Comma by default; semicolon or tab when the header plainly uses them (spreadsheet exports).
            delimiter = max([",", ";", "\t"], key=first.count) if first.strip() else ","
            reader = csv.reader(f, delimiter=delimiter)
            header: list[str] | None = None
            rows, lines = [], []
            for raw in reader:
                cells = [c.strip() for c in raw]
                if not any(cells):
                    continue
                if header is None:
                    header = cells
                    _check_header(header, name)
                    continue
                if len(cells) != len(header):
                    raise DataError(f"{name} row {reader.line_num} has {len(cells)} cells but the header has "
                                    f"{len(header)} columns; every row needs one value per column")
                rows.append(cells)
                lines.append(reader.line_num)
    except UnicodeDecodeError:
        raise DataError(f"{name} is not UTF-8 text; save it as UTF-8 CSV") from None
    except csv.Error as exc:
        raise DataError(f"{name} is not valid CSV: {exc}") from None
    if header is None:
        raise DataError(f"{name} is empty; it needs a header row and at least one data row")
    if not rows:
        raise DataError(f"{name} has a header but no data rows; add samples")
    return header, rows, lines


def _check_header(header: list[str], name: str) -> None:
    if all(_is_number(c) for c in header):
        raise DataError(f"{name} line 1 holds only numbers; a header row with column names is required "
                        "(e.g. f1,f2,label)")
    for i, col in enumerate(header):
        if not col:
            raise DataError(f"{name} header: column {i + 1} has no name; name every column")
    counts = Counter(header)  # linear: a 10^6-column header is checked in a blink
    dupes = sorted(c for c, n in counts.items() if n > 1)
    if dupes:
        raise DataError(f"{name} header: column {dupes[0]!r} appears more than once; column names must be unique")


def _label_column(header: list[str], label: str | None, name: str) -> int:
    if label is None:
        return len(header) - 1
    if label not in header:
        raise DataError(f"{name} has no column {label!r} for data.label; its columns are: "
                        + ", ".join(header))
    return header.index(label)


def _convert_cell_by_cell(features: list[list[str]], lines: list[int], columns: list[str],
                          name: str) -> np.ndarray:
    """The slow path, taken only when numpy refuses the table: find and name the first bad cell."""
    x = np.empty((len(features), len(columns)), dtype=np.float32)
    for r, (row, line) in enumerate(zip(features, lines)):
        for c, (cell, col) in enumerate(zip(row, columns)):
            if not cell:
                raise DataError(f"{name} row {line}, column {col!r} is empty; fill it in or drop the row")
            try:
                with np.errstate(over="ignore"):
                    x[r, c] = float(cell)
            except ValueError:
                raise DataError(f"{name} row {line}, column {col!r}: {cell!r} is not a number; "
                                "features must be numeric") from None
    return x


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _encode_labels(labels: list[str]) -> tuple[list[str], np.ndarray]:
    values: list = labels
    try:
        # Integers, also as spreadsheets write them ("2.0"), are one class per number.
        numbers = [float(v) for v in labels]
        if all(n.is_integer() for n in numbers):
            values = [int(n) for n in numbers]
    except ValueError:
        pass
    classes = sorted(set(values))
    index = {c: i for i, c in enumerate(classes)}
    y = np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))
    return [str(c) for c in classes], y
