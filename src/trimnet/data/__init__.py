"""Datasets: one reader per source format behind a registry, all producing ``Dataset``.

``load_dataset("digits")``, ``load_dataset("csv:path.csv")``, ``load_dataset("npz:f.npz")``,
``load_dataset("folder:dir/")``, ``load_dataset("idx:dir/")``, ``load_dataset("cifar:dir/")``.
"""

from __future__ import annotations

import importlib
from typing import Callable

from trimnet.config import DataConfig
from trimnet.data.arrays import from_arrays
from trimnet.data.dataset import Dataset, Normalization, RawData, build
from trimnet.data.loaders import as_dataset
from trimnet.errors import DataError
from trimnet.registry import Registry

# A reader takes the part after "scheme:" and the data config, and returns RawData.
Reader = Callable[[str, DataConfig], RawData]
SOURCES: Registry[Reader] = Registry("data source", DataError)

_NOT_READERS = {"dataset", "inputs", "stream", "tokenizer", "arrays", "loaders"}


def _load_readers() -> None:
    """Import every reader module of this package; each registers itself."""
    import pkgutil

    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_READERS:
            importlib.import_module(f"trimnet.data.{info.name}")


def register_source(name: str):
    return SOURCES.register(name)


def list_sources() -> list[str]:
    _load_readers()
    return SOURCES.names()


def load_dataset(source: str | None = None, config: DataConfig | None = None, **overrides) -> Dataset:
    """Load, split and normalize a dataset. ``overrides`` set fields of ``DataConfig``.

    With ``stream=True`` (folder: and text: files) a ``trimnet.data.stream.StreamingDataset``
    comes back instead: samples stay on disk and ``.loader(split, batch_size, workers=N)`` reads them."""
    cfg = DataConfig(**{**(config.__dict__ if config else {}), **overrides})
    if source is not None:
        cfg.source = source
    cfg.validate()
    if cfg.stream and cfg.task != "classification":
        raise DataError("data.stream reads classification folders and text files; drop --data.stream "
                        "for a regression source")
    if cfg.stream:  # read from disk per batch: a StreamingDataset of torch datasets and loaders
        from trimnet.data.stream import load_streaming

        return load_streaming(cfg)
    _load_readers()
    scheme, _, rest = cfg.source.partition(":")
    if not rest and scheme not in SOURCES:
        raise DataError(
            f"unknown dataset {cfg.source!r}; use a bundled one ({', '.join(_builtin_names())}) "
            "or a file: csv:PATH, npz:PATH, folder:DIR, idx:DIR, cifar:DIR"
        )
    reader = SOURCES.get(scheme)
    raw = reader(rest, cfg)
    if cfg.task == "regression":
        from trimnet.data.arrays import regression_from_raw

        return regression_from_raw(raw, name=cfg.source, val_split=cfg.val_split, test_split=cfg.test_split,
                                   seed=cfg.seed)
    return build(raw, name=cfg.source, val_split=cfg.val_split, test_split=cfg.test_split,
                 seed=cfg.seed, image_size=cfg.image_size)


def _builtin_names() -> list[str]:
    from trimnet.data.builtin import BUILTIN

    return sorted(BUILTIN)


__all__ = ["Dataset", "as_dataset", "from_arrays", "Normalization", "RawData", "SOURCES", "load_dataset", "list_sources", "register_source"]
