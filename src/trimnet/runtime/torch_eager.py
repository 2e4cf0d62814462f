"""PyTorch eager, in inference mode: the reference every other backend is checked against.

Registers ``torch`` (CPU) and ``torch-cuda``. torch's CPU thread pool is process-wide, so
a runner given ``threads`` sets it before a batch when something else changed it.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from trimnet.precision import Precision
from trimnet.runtime.backend import Backend, CalibrationPlan, Runner, register_backend


class TorchRunner(Runner):
    def __init__(self, model: nn.Module, *, backend: str = "torch", device: str = "cpu", threads: int | None = None,
                 details: dict | None = None):
        # never change the caller's module: copy it when it must move or switch to eval mode
        if model.training or device != "cpu":
            model = copy.deepcopy(model).eval().to(device)
        self.model = model
        self.backend = backend
        self.device = torch.device(device)
        self.threads = threads
        self._forward: Callable[[torch.Tensor], torch.Tensor] = model  # subclasses swap in a compiled one
        self._details = details or {}

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.call(self.prepare(x)).float().cpu().numpy()

    def prepare(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self.device)

    def call(self, t: torch.Tensor) -> torch.Tensor:
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        with torch.inference_mode():
            out = self._forward(t)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # kernels run asynchronously: done means done
        return out

    def describe(self) -> dict:
        out = {"backend": self.backend, "device": str(self.device), "precision": self.precision,
               "threads": self.threads if self.threads is not None else torch.get_num_threads(),
               "versions": {"torch": torch.__version__}, **self._details}
        if self.device.type == "cuda":
            out["device_name"] = torch.cuda.get_device_name(self.device)
        return out

    def close(self) -> None:
        self._forward = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _load_cpu(model: nn.Module, onnx: Path | None, example_inputs: torch.Tensor, *,
              threads: int | None = None) -> TorchRunner:
    return TorchRunner(model, threads=threads, details={"mode": "eager, inference_mode"})


def _load_cuda(model: nn.Module, onnx: Path | None, example_inputs: torch.Tensor, *,
               device: str = "cuda") -> TorchRunner:
    return TorchRunner(model, backend="torch-cuda", device=device,
                       details={"mode": "eager, inference_mode",
                                "timed": "forward and synchronize, inputs already on the device"})


def cuda_missing() -> str | None:
    return None if torch.cuda.is_available() else "no CUDA device (torch.cuda.is_available() is False)"


# the runner runs the module in the dtype it is in: fp32, or bf16 / fp16 once quantize has cast it
LOWERED = (Precision.FP32, Precision.BF16, Precision.FP16)
KERNELS = ((Precision.FP32, {}), (Precision.BF16, {}))  # calibrated: PyTorch's own kernels at each dtype

register_backend(Backend("torch", "PyTorch eager on CPU, inference mode", _load_cpu,
                         calibration=CalibrationPlan("kernels", KERNELS), versions=("torch",), precisions=LOWERED))
register_backend(Backend("torch-cuda", "PyTorch eager on a CUDA GPU", _load_cuda, unavailable=cuda_missing,
                         calibration=CalibrationPlan("kernels", KERNELS, device="cuda"), precisions=LOWERED))
