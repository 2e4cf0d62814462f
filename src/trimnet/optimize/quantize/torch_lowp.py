"""bf16 / fp16 in PyTorch eager on the CPU: weights and arithmetic cast, inputs and outputs fp32.

Fast where the CPU has the instructions (AVX-512 BF16 or AMX for bf16); elsewhere PyTorch
emulates them and it is slower than fp32, which the measurement then shows and the fp32
model is kept. Saved as the usual spec + safetensors run, with bf16/fp16 weights.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from trimnet.optimize.quantize.method import BuildContext, Candidate, register_method

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
NATIVE_FLAGS = {"bf16": ("avx512_bf16", "amx_bf16"), "fp16": ("avx512_fp16", "amx_fp16")}


class LowPrecision(nn.Module):
    """Runs ``model`` in ``dtype``; takes and returns float32 like every other runner."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.model = copy.deepcopy(model).to(dtype)  # .to casts in place: never the caller's module
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.to(self.dtype)).float()


def native(precision: str) -> bool:
    """Whether this CPU has instructions for ``precision`` (else PyTorch emulates it)."""
    from trimnet.bench.env import describe_cpu

    flags = set(describe_cpu()["flags"])
    return any(f in flags for f in NATIVE_FLAGS[precision])


def _build(ctx: BuildContext, precision: str) -> Candidate:
    wrapped = LowPrecision(ctx.model, DTYPES[precision]).eval()
    layers = [{"layer": name, "op": type(m).__name__, "precision": precision}
              for name, m in wrapped.model.named_modules()
              if not any(True for _ in m.children()) and any(True for _ in m.parameters(recurse=False))]
    fast = native(precision)
    note = None if fast else (f"this CPU has no {precision} instructions ({' or '.join(NATIVE_FLAGS[precision])}); "
                              f"PyTorch emulates {precision}, expect it slower than fp32")
    return Candidate(backend="torch", precision=precision, options={}, module=wrapped, baseline_module=ctx.model,
                     layers=layers, details={"tool": "torch (module.to)", "dtype": str(DTYPES[precision]),
                                             "native": fast, "layers": len(layers), "torch": torch.__version__},
                     note=note)


@register_method("bf16", "torch", "bf16 weights and arithmetic in PyTorch eager")
def build_bf16(ctx: BuildContext) -> Candidate:
    return _build(ctx, "bf16")


@register_method("fp16", "torch", "fp16 weights and arithmetic in PyTorch eager")
def build_fp16(ctx: BuildContext) -> Candidate:
    return _build(ctx, "fp16")
