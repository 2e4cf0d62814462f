"""The bundled datasets from scikit-learn: nothing is downloaded."""

from __future__ import annotations

import numpy as np

from trimnet.config import DataConfig
from trimnet.data import register_source
from trimnet.data.dataset import RawData
from trimnet.errors import DataError

BUILTIN = {
    "digits": "load_digits",  # 1797 8x8 grey images, 10 classes
    "breast_cancer": "load_breast_cancer",  # 569 x 30 features, 2 classes
    "wine": "load_wine",  # 178 x 13, 3 classes
    "iris": "load_iris",  # 150 x 4, 3 classes
}


def _load(name: str) -> RawData:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, BUILTIN[name])()
    y = np.asarray(bunch.target, dtype=np.int64)
    if name == "digits":
        x = np.asarray(bunch.images, dtype=np.float32)[:, None, :, :]
        return RawData(x=x, y=y, class_names=[str(c) for c in bunch.target_names], kind="image", origin=name)
    x = np.asarray(bunch.data, dtype=np.float32)
    return RawData(x=x, y=y, class_names=[str(c) for c in bunch.target_names], kind="tabular", origin=name)


def _make_reader(name: str):
    def read(rest: str, cfg: DataConfig) -> RawData:
        if rest:
            raise DataError(f"the bundled dataset {name!r} takes no path; pass just '{name}'")
        return _load(name)

    return read


for _name in BUILTIN:
    register_source(_name)(_make_reader(_name))
