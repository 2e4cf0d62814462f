"""``torch.compile`` with inductor on CPU: generated C++ kernels, so a C++ compiler must be present.

Shapes are specialized (``dynamic=False`` by default): each new batch size compiles once on
its first batch, which is the fastest code for a fixed batch and what a benchmark measures;
the harness keeps that first batch out of its statistics.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from trimnet.runtime.backend import Backend, CalibrationPlan, register_backend
from trimnet.runtime.torch_eager import TorchRunner


class CompiledRunner(TorchRunner):
    def __init__(self, model: nn.Module, *, threads: int | None, mode: str | None, dynamic: bool | None):
        super().__init__(model, backend="torch-compile", threads=threads,
                         details={"mode": f"torch.compile(backend='inductor', mode={mode!r}, dynamic={dynamic})"})
        self._forward = torch.compile(self.model, backend="inductor", mode=mode, dynamic=dynamic)


def _load(model: nn.Module, onnx: Path | None, example_inputs: torch.Tensor, *, threads: int | None = None,
          mode: str | None = None, dynamic: bool | None = False) -> CompiledRunner:
    return CompiledRunner(model, threads=threads, mode=mode, dynamic=dynamic)


def cxx_compiler() -> str | None:
    """The C++ compiler inductor would use on CPU, or None."""
    candidates = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    for name in candidates:
        found = shutil.which(name)
        if found:
            return found
    return None


def _missing() -> str | None:
    if cxx_compiler() is None:
        return "inductor on CPU needs a C++ compiler (g++ or clang++) and none was found on PATH"
    return None


# inductor fuses elementwise chains (norms, activations, adds) into generated kernels; calibrated
# on request only: its GEMMs and convolutions are PyTorch's, so only its call overhead is timed
register_backend(Backend("torch-compile", "torch.compile (inductor) on CPU", _load, unavailable=_missing,
                         fuses=frozenset({"norm", "activation", "simple_activation", "add", "free"}),
                         calibration=CalibrationPlan("overhead", by_default=False, borrows="torch/fp32")))
