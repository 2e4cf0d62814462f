"""Parity: does a runtime compute what the PyTorch model computes?

Every export and every non-eager runner is checked on seeded random inputs and, when
given, on real ones. The error measures are the largest absolute difference and that
difference relative to the largest reference output (elementwise relative error is
meaningless for logits near zero). A check fails when the largest difference exceeds
``atol + rtol * max|reference|`` for the precision that ran; failure is an error.
"""

from __future__ import annotations

import contextlib
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.precision import Precision
from trimnet.runtime.errors import ParityError

RunFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float  # relative to max|reference output|

    def limit(self, scale: float) -> float:
        return self.atol + self.rtol * scale


# f32 kernels differ in summation order only; f16 weights round each weight to 11 bits;
# bf16 arithmetic keeps 8 bits of mantissa through every layer. Keyed by the runtime's
# spelling (``Precision.element``), which is also what a report records.
TOLERANCES: dict[str, Tolerance] = {
    Precision.FP32.element: Tolerance(atol=1e-4, rtol=1e-3),
    Precision.FP16.element: Tolerance(atol=1e-2, rtol=2e-2),
    Precision.BF16.element: Tolerance(atol=5e-2, rtol=1e-1),
}


def tolerance_for(precision: str | Precision) -> Tolerance:
    """The parity tolerance of ``precision`` in any spelling (``f16``, ``fp16``, ``Precision.FP16``)."""
    try:
        return TOLERANCES[Precision.parse(precision).element]
    except (KeyError, ValueError):
        raise ConfigError(f"unknown precision {precision!r}; choose one of: {', '.join(TOLERANCES)}") from None


@dataclass
class ParityCase:
    label: str
    batch: int
    max_abs: float
    max_rel: float
    scale: float  # max|reference output|
    limit: float
    top1_agreement: float | None
    passed: bool


@dataclass
class ParityReport:
    runtime: str
    precision: str
    tolerance: Tolerance
    cases: list[ParityCase] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.cases)

    @property
    def max_abs(self) -> float:
        return max((c.max_abs for c in self.cases), default=0.0)

    @property
    def max_rel(self) -> float:
        return max((c.max_rel for c in self.cases), default=0.0)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "precision": self.precision, "passed": self.passed,
                "tolerance": asdict(self.tolerance), "max_abs": self.max_abs, "max_rel": self.max_rel,
                "cases": [asdict(c) for c in self.cases]}

    def summary(self) -> str:
        worst = max(self.cases, key=lambda c: c.max_abs / c.limit if c.limit else 0.0)
        top1 = "" if worst.top1_agreement is None else f", top-1 agreement {worst.top1_agreement:.1%}"
        return (f"{self.runtime} vs PyTorch on {worst.label} inputs: max abs error {worst.max_abs:.3g}, "
                f"relative {worst.max_rel:.3g} (limit {worst.limit:.3g} at {self.precision}: "
                f"atol {self.tolerance.atol:g} + rtol {self.tolerance.rtol:g} x max|output| {worst.scale:.3g}){top1}")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the block and restore its mode afterwards."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def reference_outputs(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    with eval_mode(model), torch.inference_mode():
        return model(x).detach().float().cpu().numpy()


def random_inputs(in_shape: Sequence[int], batches: Sequence[int] = (1, 3),
                  seed: int = 0, model: nn.Module | None = None) -> list[tuple[str, torch.Tensor]]:
    """Seeded standard-normal inputs (models see normalized data) at a few batch sizes; a model
    that reads something else (token ids) draws its own through ``sample_inputs``."""
    g = torch.Generator().manual_seed(seed)
    if model is not None and hasattr(model, "sample_inputs"):
        return [(f"random batch {b}", model.sample_inputs(b, g)) for b in batches]
    return [(f"random batch {b}", torch.randn((b, *in_shape), generator=g)) for b in batches]


def real_inputs(inputs: torch.Tensor | None = None, dataset=None, limit: int = 256) -> list[tuple[str, torch.Tensor]]:
    """Up to ``limit`` real samples: ``inputs`` as given, or the test split of ``dataset``."""
    out = []
    if inputs is not None:
        out.append((f"given batch {min(len(inputs), limit)}", torch.as_tensor(inputs)[:limit].float()))
    if dataset is not None:
        x = dataset.x_test[:limit].float()
        out.append((f"{dataset.name} test batch {len(x)}", x))
    return out


def compare(label: str, reference: np.ndarray, output: np.ndarray, tolerance: Tolerance) -> ParityCase:
    """Measure one pair of outputs against the tolerance."""
    ref = reference.astype(np.float64)
    diff = np.abs(output.astype(np.float64) - ref)
    finite = np.isfinite(ref)
    max_abs = float("inf") if not np.isfinite(diff[finite]).all() else float(diff.max(initial=0.0))
    scale = float(np.abs(ref[finite]).max(initial=0.0))
    limit = tolerance.limit(scale)
    top1 = None
    if ref.ndim == 2 and ref.shape[1] > 1:
        top1 = float((ref.argmax(1) == output.argmax(1)).mean())
    return ParityCase(label=label, batch=len(reference), max_abs=max_abs,
                      max_rel=max_abs / scale if scale > 0 else max_abs, scale=scale, limit=limit,
                      top1_agreement=top1, passed=max_abs <= limit)


def check_parity(
    model: nn.Module,
    run: RunFn,
    inputs: Sequence[tuple[str, torch.Tensor]],
    *,
    runtime: str,
    precision: str = Precision.FP32.element,
    tolerance: Tolerance | None = None,
    strict: bool = True,
) -> ParityReport:
    """Run ``inputs`` through ``model`` (eager, eval mode) and through ``run``; compare.

    With ``strict`` (the default) a failed check raises ``ParityError``; the report is
    returned either way otherwise.
    """
    tol = tolerance or tolerance_for(precision)
    report = ParityReport(runtime=runtime, precision=precision, tolerance=tol)
    for label, x in inputs:
        ref = reference_outputs(model, x)
        out = np.asarray(run(np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float32)))
        if out.shape != ref.shape:
            raise ParityError(f"{runtime} returned outputs of shape {out.shape} on {label} inputs but PyTorch "
                              f"returns {ref.shape}; the exported graph lost or fixed a dimension", report)
        report.cases.append(compare(label, ref, out, tol))
    if strict and not report.passed:
        raise ParityError(f"parity check failed: {report.summary()}; the exported model does not compute what "
                          "the PyTorch model computes", report)
    return report
