"""What a quantization run measured and kept: accuracy and speed before and after, per layer."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from trimnet.errors import TrimnetError
from trimnet.optimize.quantize.config import QuantizeConfig
from trimnet.optimize.quantize.method import Candidate


@dataclass
class Latency:
    """Median latency of fp32 and of the lower precision on one backend, one batch size, interleaved."""

    batch: int
    fp32_ms: float
    lowp_ms: float
    ratio: float | None = None  # median over interleaved pairs of lowp / fp32 (steadier than the medians' ratio)

    @property
    def speedup(self) -> float:
        if self.ratio:
            return 1.0 / self.ratio
        return self.fp32_ms / self.lowp_ms if self.lowp_ms > 0 else float("inf")

    def to_dict(self) -> dict:
        return {"batch": self.batch, "fp32_ms": self.fp32_ms, "lowp_ms": self.lowp_ms, "speedup": self.speedup}


@dataclass
class QuantizeResult:
    precision: str  # what was asked
    backend: str
    kept: str  # what the result holds: ``precision``, or "fp32" when that was faster or the runtime ran fp32
    reason: str  # why ``kept``
    accuracy_before: float  # fp32 model, PyTorch eager, on ``split``
    accuracy_after: float  # the lower-precision model on ``backend``, on ``split``
    latency: list[Latency]
    parity: dict  # the lower-precision outputs against fp32 PyTorch: max |diff|, SQNR, criterion, passed
    layers: list[dict]  # per layer: name, op, precision it runs in, how it was quantized
    details: dict  # tool, versions, calibration, operators the runtime runs
    config: QuantizeConfig
    note: str | None = None
    fuse: dict | None = None  # the fusion summary when the model was fused first
    path: Path | None = None  # the run directory, once saved
    source: dict | None = field(default=None, repr=False)  # in_shape, class_names, normalization, meta, path
    candidate: Candidate | None = field(default=None, repr=False)
    fp32_model: nn.Module | None = field(default=None, repr=False)  # the fp32 model (fused) it was made from
    workdir: Any = field(default=None, repr=False)  # TemporaryDirectory holding the files until saved
    split: str = "test"  # the split accuracy was measured on

    @property
    def split_name(self) -> str:
        return {"val": "validation", "train": "training"}.get(self.split, self.split)

    @property
    def accuracy_drop(self) -> float:
        return self.accuracy_before - self.accuracy_after

    @property
    def speedup(self) -> float:
        """Geometric mean over the measured batch sizes of fp32 latency / lower-precision latency."""
        if not self.latency:
            return float("nan")
        return math.exp(sum(math.log(max(m.speedup, 1e-9)) for m in self.latency) / len(self.latency))

    @property
    def latency_before(self) -> dict[int, float]:
        return {m.batch: m.fp32_ms for m in self.latency}

    @property
    def latency_after(self) -> dict[int, float]:
        return {m.batch: m.lowp_ms for m in self.latency}

    @property
    def model(self) -> nn.Module | None:
        """The kept model as a PyTorch module, where it is one (torch backend, or fp32 kept)."""
        if self.kept == self.precision:
            return self.candidate.module if self.candidate is not None else None
        return self.fp32_model

    @property
    def file(self) -> Path | None:
        """The kept model's file for its runtime (ONNX or OpenVINO IR), where there is one."""
        c = self.candidate
        if c is None:
            return None
        chosen = c.file if self.kept == self.precision else c.baseline_file
        if chosen is None:
            return None
        return self.path / saved_name(self, chosen) if self.path is not None else chosen

    def summary(self) -> str:
        speed = ", ".join(f"batch {m.batch}: {m.fp32_ms:.3g} -> {m.lowp_ms:.3g} ms" for m in self.latency)
        speed = f"{self.speedup:.2f}x ({speed})" if self.latency else "not timed (the runtime ran fp32)"
        return (f"{self.precision} on {self.backend}: {self.split_name} accuracy {self.accuracy_before:.4f} -> "
                f"{self.accuracy_after:.4f} ({-self.accuracy_drop * 100:+.2f} points), {speed}; "
                f"kept {self.kept}: {self.reason}")

    def runner(self, threads: int | None = None):
        """The kept model loaded on its backend (a ``trimnet.runtime.Runner``)."""
        from trimnet.optimize.quantize.saving import open_candidate

        shape = tuple((self.source or {}).get("in_shape", ()))
        return open_candidate(self.candidate, self.kept != self.precision, self.fp32_model, shape, threads)

    def save(self, out: str | Path) -> Path:
        """Write the kept model into run directory ``out`` (see ``saving.py``)."""
        from trimnet.optimize.quantize.saving import save_result

        return save_result(self, out)

    def to_dict(self) -> dict:
        return {"precision": self.precision, "backend": self.backend, "kept": self.kept, "reason": self.reason,
                "summary": self.summary(), "accuracy": {"before": self.accuracy_before, "after": self.accuracy_after,
                                                        "drop": self.accuracy_drop, "split": self.split},
                "speedup": self.speedup if self.latency else None, "latency": [m.to_dict() for m in self.latency], "parity": self.parity,
                "note": self.note, "fuse": self.fuse, "details": self.details, "layers": self.layers,
                "config": self.config.to_dict(), "path": str(self.path) if self.path else None,
                "file": str(self.file) if self.file else None}


def saved_name(result: QuantizeResult, file: Path) -> str:
    """The name a candidate file gets in the run directory (the fp32 export becomes model.onnx)."""
    return "model.onnx" if result.candidate is not None and file == result.candidate.baseline_file else file.name


class AccuracyDropError(TrimnetError):
    """A lower-precision model that loses more test accuracy than allowed; ``result`` holds what was measured."""

    def __init__(self, message: str, result: QuantizeResult):
        super().__init__(message)
        self.result = result


class ParityMismatch(TrimnetError):
    """A lower-precision model whose outputs leave its precision's tolerance; ``result`` holds what was measured."""

    def __init__(self, message: str, result: QuantizeResult):
        super().__init__(message)
        self.result = result


def new_workdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="trimnet-quantize-")
