"""The check every pass must pass: fp32 outputs equal to the model's before it, within 1e-5 of scale."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils._pytree import tree_leaves

from trimnet.optimize.fuse.base import FuseError
from trimnet.optimize.fuse.record import NumericCheck

RTOL = 1e-5  # max |difference| <= RTOL * max |output|; folding is exact up to float32 rounding

Inputs = list[tuple[str, torch.Tensor]]


def outputs(model: nn.Module, inputs: Inputs) -> tuple[list[torch.Tensor], dict]:
    """The flattened outputs on every input, and the layer shapes seen on the first one."""
    from trimnet.optimize.fuse.chain import ShapeRecorder

    outs = []
    with torch.inference_mode():
        for i, (_, x) in enumerate(inputs):
            if i == 0:
                with ShapeRecorder(model) as recorder:
                    y = model(x)
            else:
                y = model(x)
            outs.append(torch.cat([t.detach().float().flatten() for t in tree_leaves(y) if isinstance(t, torch.Tensor)]))
    return outs, recorder.shapes


def compare(before: list[torch.Tensor], after: list[torch.Tensor], inputs: Inputs, rtol: float = RTOL) -> NumericCheck:
    max_abs, scale = 0.0, 0.0
    for ref, out in zip(before, after):
        if ref.shape != out.shape:
            return NumericCheck(float("inf"), 0.0, 0.0, rtol, [label for label, _ in inputs])
        ref64, out64 = ref.double(), out.double()
        diff = (out64 - ref64).abs()
        max_abs = max(max_abs, float(diff.max()) if diff.numel() else 0.0)
        if not torch.isfinite(diff).all():
            max_abs = float("inf")
        scale = max(scale, float(ref64.abs().max()) if ref64.numel() else 0.0)
    return NumericCheck(max_abs, scale, max(rtol * scale, 1e-12), rtol, [label for label, _ in inputs])


def require(check: NumericCheck, pass_name: str) -> None:
    """Raise when the check failed: a fused model that computes something else must never be used."""
    if not check.passed:
        raise FuseError(f"fusion pass {pass_name} changed the model's outputs: max |difference| {check.max_abs:.3g} "
                        f"against a limit of {check.limit:.3g} ({check.rtol:g} x max|output| {check.scale:.3g}); "
                        f"run without it (passes=...) and report the model")
