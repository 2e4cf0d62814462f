"""ONNX Runtime: all graph optimizations on, a fixed intra-op thread count, sequential execution.

Registers ``onnxruntime`` (CPU execution provider) and ``onnxruntime-cuda`` (CUDA execution
provider, when the installed onnxruntime has it and a GPU is present).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trimnet.precision import Precision
from trimnet.runtime.backend import Backend, CalibrationPlan, Runner, register_backend

REQUIRES = (("onnxruntime", "onnx"),)
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


class OrtRunner(Runner):
    def __init__(self, path: Path, *, backend: str, provider: str, threads: int | None, optimization: str,
                 spin: bool):
        import onnxruntime as ort

        if optimization not in OPTIMIZATION_LEVELS:
            from trimnet.errors import ConfigError

            raise ConfigError(f"unknown optimization level {optimization!r}; choose one of: "
                              f"{', '.join(OPTIMIZATION_LEVELS)}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[optimization]
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or 0  # 0: onnxruntime picks (one per physical core)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        # busy-waiting workers answer faster but burn the cores other backends are measured on
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
        self._input = self._session.get_inputs()[0].name
        self._outputs = [self._session.get_outputs()[0].name]
        self.backend = backend
        self._info = {"provider": provider, "threads": threads, "graph_optimization": optimization,
                      "spinning": spin, "versions": {"onnxruntime": ort.__version__}}

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.call(self.prepare(x))[0]

    def call(self, x: np.ndarray) -> list:
        return self._session.run(self._outputs, {self._input: x})

    def describe(self) -> dict:
        device = "cuda" if self._info["provider"].startswith("CUDA") else "cpu"
        return {"backend": self.backend, "device": device, "precision": self.precision, **self._info}

    def close(self) -> None:
        self._session = None


def _load_cpu(model: nn.Module | None, exported: Path, example_inputs: torch.Tensor, *, threads: int | None = None,
              optimization: str = "all", spin: bool = True) -> OrtRunner:
    return OrtRunner(exported, backend="onnxruntime", provider="CPUExecutionProvider", threads=threads,
                     optimization=optimization, spin=spin)


def _load_cuda(model: nn.Module | None, exported: Path, example_inputs: torch.Tensor, *,
               optimization: str = "all") -> OrtRunner:
    return OrtRunner(exported, backend="onnxruntime-cuda", provider="CUDAExecutionProvider", threads=None,
                     optimization=optimization, spin=False)


def _cuda_missing() -> str | None:
    if not torch.cuda.is_available():  # checked first: it spares importing onnxruntime on CPU machines
        return "no CUDA device (torch.cuda.is_available() is False)"
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return "this onnxruntime has no CUDA execution provider (pip install onnxruntime-gpu)"
    return None


# BN is folded at export; ReLU/Clip and the residual add become post-ops of the convolution (checked
# against the graphs onnxruntime builds); GELU, pooling, LayerNorm and softmax stay apart
FUSES = frozenset({"norm", "simple_activation", "add", "free"})

register_backend(Backend("onnxruntime", "ONNX Runtime, CPU execution provider", _load_cpu, requires=REQUIRES,
                         reads=(".onnx",), export="onnx", fuses=FUSES, calibration=CalibrationPlan("graph"),
                         versions=("onnxruntime",), precisions=(Precision.FP32, Precision.INT8)))
register_backend(Backend("onnxruntime-cuda", "ONNX Runtime, CUDA execution provider", _load_cuda, requires=REQUIRES,
                         unavailable=_cuda_missing, reads=(".onnx",), export="onnx", fuses=FUSES))
