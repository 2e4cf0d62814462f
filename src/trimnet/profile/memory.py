"""Bytes: parameters per dtype, and the peak of live activations from an operator trace.

The trace is a list of allocations, each live from the operator that wrote it to the last
operator that read it (or to the end, for the model's inputs and outputs, which the caller
holds). The peak is what eager PyTorch holds at once when every tensor is freed right after
its last use; parameters and buffers are not activations and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn


@dataclass
class Allocation:
    start: int  # step of the operator that wrote it
    end: int  # step of its last reader
    nbytes: int


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def bytes_by_dtype(tensors: Iterable[torch.Tensor]) -> dict[str, int]:
    """``{"float32": 46758048, ...}`` over distinct tensors."""
    out: dict[str, int] = {}
    for t in tensors:
        key = dtype_name(t.dtype)
        out[key] = out.get(key, 0) + t.numel() * t.element_size()
    return out


def own_bytes(module: nn.Module) -> int:
    """Bytes of the parameters and buffers a module holds itself (not its children's)."""
    tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
    return sum(t.numel() * t.element_size() for t in tensors)


def peak_bytes(allocations: Iterable[Allocation], steps: int) -> int:
    """The largest sum of live allocation sizes over steps ``0..steps``."""
    delta = [0] * (steps + 2)
    for a in allocations:
        delta[max(0, a.start)] += a.nbytes
        delta[min(steps, a.end) + 1] -= a.nbytes
    peak = live = 0
    for d in delta:
        live += d
        peak = max(peak, live)
    return peak


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    return f"{n:.2f} GB"  # pragma: no cover
