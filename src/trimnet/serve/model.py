"""A model as the server holds it: one runner (one copy of the weights), its input, task, classes and normalization."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from trimnet.errors import ConfigError
from trimnet.serve.protocol import TASK_OUTPUTS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(eq=False)
class ServedModel:
    """``infer`` maps float32 ``(B, *in_shape)`` model inputs to ``(B, classes)`` probabilities, or for a
    regression model (``task="regression"``) to ``(B, num_values)`` predicted values (in any thread)."""

    name: str
    infer: Callable[[np.ndarray], np.ndarray]
    in_shape: tuple[int, ...]
    class_names: list[str]
    preprocess: Callable[[np.ndarray], np.ndarray] | None = None  # raw inputs -> what the model was trained on
    platform: str = "trimnet"
    info: dict = field(default_factory=dict)
    close: Callable[[], None] = lambda: None
    # a BYTES input: texts -> model inputs (the artifact's tokenizer); None: the model takes numbers only
    encode_text: Callable[[list[str]], np.ndarray] | None = None
    input_dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))  # numbers are cast to it
    task: str = "classification"  # or "regression": infer gives values, class_names is empty
    num_values: int = 0  # regression: predicted values per sample


def load_model(source: Any, *, name: str | None = None, backend: str = "torch", **options: Any) -> ServedModel:
    """A served model from a run directory (or a loaded ``Artifact``), run by ``backend``.

    ``options`` go to the backend (``threads``, ...). The weights are read without pickle
    (``load_artifact``); onnxruntime and openvino run an export checked against PyTorch.
    """
    import torch

    from trimnet.artifact import Artifact, load_artifact
    from trimnet.runtime import get_backend, load_runner

    artifact = source if isinstance(source, Artifact) else load_artifact(Path(source))
    name = name or artifact.path.name
    check_name(name)
    task = artifact.task.get("name", "classification")
    if task not in TASK_OUTPUTS:  # the protocol's outputs here are class scores or predicted values
        raise ConfigError(f"{artifact.path} is a {task} model; trimnet serve answers classification and regression "
                          f"models only. Use trimnet predict, or export it (trimnet export) and serve the ONNX file "
                          f"with a general server")
    if "dynamic" in get_backend(backend).options:
        options.setdefault("dynamic", True)  # batch sizes vary from call to call: compile once, not per size
    example = artifact.example_inputs(2)
    runner = load_runner(backend, artifact.model, example, **options)

    def infer(x: np.ndarray) -> np.ndarray:
        logits = torch.from_numpy(np.ascontiguousarray(runner.run(x), dtype=np.float32))
        return torch.softmax(logits, dim=1).numpy()  # as trimnet.predict computes it

    def regress(x: np.ndarray) -> np.ndarray:
        values = np.ascontiguousarray(runner.run(x), dtype=np.float32)  # the outputs themselves, as trimnet.predict
        return values.reshape(len(values), -1)

    info = {"backend": backend, "arch": artifact.meta.get("arch"), "run_dir": str(artifact.path),
            "normalization": artifact.meta.get("normalization")}
    dtype = np.dtype(str(example.dtype).replace("torch.", ""))  # float32, or int64 token ids
    regression = task == "regression"
    return ServedModel(name=name, infer=regress if regression else infer, in_shape=artifact.in_shape,
                       class_names=artifact.class_names, preprocess=numpy_preprocess(artifact),
                       platform=f"trimnet_{backend}", info=info, close=runner.close,
                       encode_text=text_encoder(artifact), input_dtype=dtype, task=task,
                       num_values=num_values(artifact) if regression else 0)


def num_values(artifact) -> int:
    """A regression artifact's values per sample: its task's ``outputs``, else its ``num_classes``."""
    return int(artifact.task.get("outputs") or artifact.meta.get("num_classes") or 1)


def text_encoder(artifact) -> Callable[[list[str]], np.ndarray] | None:
    """``artifact.encode_text`` when the artifact can turn text into model inputs (it has a tokenizer)."""
    encode = getattr(artifact, "encode_text", None)
    if not callable(encode) or not getattr(artifact, "reads_text", False):
        return None
    return encode


def check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise ConfigError(f"model name {name!r} cannot go in a URL; use letters, digits, '.', '_' and '-' "
                          "(pass --name)")


def numpy_preprocess(artifact) -> Callable[[np.ndarray], np.ndarray] | None:
    """``Artifact.preprocess`` in numpy: ``(x - mean) / std`` along the same axis, in float32.

    Subtraction and division are correctly rounded IEEE operations in numpy and torch alike,
    so the result equals ``artifact.preprocess`` bit for bit (tested), at a tenth of the cost
    for one sample.
    """
    norm = artifact.normalization
    if norm is None:
        return None
    shape = [1] * (len(artifact.in_shape) + 1)
    shape[norm.axis] = -1
    mean = np.asarray(norm.mean, dtype=np.float32).reshape(shape)
    std = np.asarray(norm.std, dtype=np.float32).reshape(shape)

    def preprocess(x: np.ndarray) -> np.ndarray:
        return (x.astype(np.float32, copy=False) - mean) / std

    return preprocess
