"""One quantization method per (precision, backend), each in its own file, behind one interface.

A method takes the fp32 model (already fused) with its ONNX export and calibration
samples, and returns a ``Candidate``: the lower-precision model as the backend will run
it (a file, or a module for PyTorch), the options to run it with, and a per-layer record
of what changed. Measuring, accepting and saving it is the same for every method
(``api.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.optimize.quantize.config import QuantizeConfig
from trimnet.registry import Registry


@dataclass
class BuildContext:
    model: nn.Module  # fp32, eval mode, fused when the config says so
    config: QuantizeConfig
    calibration: np.ndarray  # (N, *in_shape) float32 training samples
    workdir: Path  # where the method writes its files
    metadata: dict[str, str]  # trimnet.* metadata to store in exported files
    _onnx: Path | None = None

    def onnx(self) -> Path:
        """The fp32 ONNX export of ``model`` (made once, on first use)."""
        if self._onnx is None:
            from trimnet.optimize.fuse.runtime_report import quiet_export_logs
            from trimnet.runtime.export import export_onnx_file

            example = torch.from_numpy(self.calibration[:2])
            with quiet_export_logs():
                self._onnx = export_onnx_file(self.model, self.workdir / "model_fp32.onnx", example,
                                              metadata=self.metadata)
        return self._onnx


@dataclass
class Candidate:
    """A lower-precision model as ``backend`` runs it, and the fp32 model to hold it against."""

    backend: str
    precision: str  # what was asked: bf16, fp16, int8, int8-dynamic
    options: dict  # backend options it runs with (e.g. openvino precision hint)
    file: Path | None = None  # the quantized file (ONNX or OpenVINO IR); None for PyTorch
    module: nn.Module | None = None  # the module a PyTorch backend runs
    baseline_file: Path | None = None  # fp32 on the same backend
    baseline_module: nn.Module | None = None
    baseline_options: dict = field(default_factory=dict)
    layers: list[dict] = field(default_factory=list)  # per layer: name, op, precision, details
    details: dict = field(default_factory=dict)  # tool, versions, calibration, runtime operator counts
    runs_lower: bool = True  # False when the runtime ran fp32 anyway (no bf16 on this CPU, ...)
    note: str | None = None  # why runs_lower is False, or anything else a user must know

    @property
    def files(self) -> list[Path]:
        if self.file is None:
            return []
        from trimnet.optimize.quantize.saving import file_set

        return file_set(self.file)


@dataclass(frozen=True)
class Method:
    precision: str
    backend: str
    summary: str
    build: Callable[[BuildContext], Candidate]
    requires: tuple[tuple[str, str], ...] = ()  # (module, pip extra)

    @property
    def key(self) -> str:
        return f"{self.precision}:{self.backend}"


METHODS: Registry[Method] = Registry("quantization method", ConfigError)


def register_method(precision: str, backend: str, summary: str, requires: tuple[tuple[str, str], ...] = ()):
    def add(fn: Callable[[BuildContext], Candidate]) -> Callable[[BuildContext], Candidate]:
        method = Method(precision, backend, summary, fn, requires)
        METHODS.register(method.key)(method)
        return fn

    return add


def get_method(precision: str, backend: str) -> Method:
    key = f"{precision}:{backend}"
    if key not in METHODS:
        same = [m for m in METHODS.names() if m.startswith(f"{precision}:")]
        raise ConfigError(f"no {precision} method for backend {backend!r}; {precision} runs on: "
                          f"{', '.join(k.split(':', 1)[1] for k in same) or '(none)'}")
    return METHODS.get(key)


def list_methods() -> list[dict]:
    return [{"precision": m.precision, "backend": m.backend, "summary": m.summary}
            for m in (METHODS.get(k) for k in METHODS.names())]
