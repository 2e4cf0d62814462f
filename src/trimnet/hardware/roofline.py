"""Per-layer roofline arithmetic: time = overhead + max(flops / compute rate, bytes / bandwidth).

A profiled layer becomes a ``LayerWork`` (what it does, at a batch size and precision);
a device turns it into a ``LayerTime`` (how long, and what bounds it). Which layers a
runtime fuses into their neighbours (and so cost nothing of their own) is what its backend
registry entry says (``Backend.fuses``); the runtimes assumed on catalog devices are here.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trimnet.profile import LayerProfile

NORMS = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")
LAYER_NORMS = ("LayerNorm", "GroupNorm", "RMSNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d")
MATRIX_ROLES = ("conv", "matmul", "attention")  # run on matrix engines (tensor cores, AMX) where there are any
SIMPLE_ACTIVATIONS = frozenset({"ReLU", "ReLU6", "Hardtanh", "LeakyReLU"})
ACTIVATIONS = SIMPLE_ACTIVATIONS | {"SiLU", "Sigmoid", "Hardswish", "Hardsigmoid", "Tanh", "ELU", "GELU", "Mish"}
FREE = frozenset({"Flatten", "Unflatten", "Identity", "Dropout", "Dropout1d", "Dropout2d"})

# roles folded into the neighbouring convolution / matmul by the runtime a catalog device is
# assumed to run (local backends say their own: ``Backend.fuses``)
CATALOG_FUSES: dict[str, frozenset[str]] = {
    "optimized": frozenset({"norm", "activation", "simple_activation", "add", "free"}),
    "eager": frozenset({"free"}),  # training
}


@dataclass(frozen=True)
class LayerWork:
    """One layer's work at a given batch and precision, with its GEMM shape when it has one."""

    name: str
    type: str
    role: str  # conv, dwconv, matmul, attention, norm, layernorm, activation, simple_activation, add, pool,
    # elementwise, free
    flops: float
    bytes: float
    calls: int = 1
    m: float = 0.0  # GEMM output positions (per call)
    k: float = 0.0  # reduction length
    n: float = 0.0  # output channels
    bias_bytes: float = 0.0  # a linear layer on 3-D+ input with a bias: the bytes of a separate bias add

    @property
    def is_gemm(self) -> bool:
        """A convolution or matrix product timed by a GEMM efficiency curve."""
        return self.role in ("conv", "matmul")


@dataclass(frozen=True)
class LayerTime:
    name: str
    type: str
    role: str
    flops: float
    bytes: float
    compute_s: float
    memory_s: float
    overhead_s: float
    fused: bool = False

    @property
    def time_s(self) -> float:
        return 0.0 if self.fused else self.overhead_s + max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        """compute or memory (the larger roofline side); fused; none for a layer with no work."""
        if self.fused:
            return "fused"
        if self.compute_s == 0 and self.memory_s == 0:
            return "none"
        return "compute" if self.compute_s >= self.memory_s else "memory"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["time_s"] = self.time_s
        d["bound"] = self.bound
        return d


def roofline(flops: float, nbytes: float, compute_rate: float, bandwidth: float, overhead_s: float = 0.0
             ) -> tuple[float, str]:
    """(seconds, bound) of ``flops`` FLOPs moving ``nbytes`` at the given FLOP/s and bytes/s."""
    compute = flops / compute_rate if flops else 0.0
    memory = nbytes / bandwidth if nbytes else 0.0
    return overhead_s + max(compute, memory), "compute" if compute >= memory else "memory"


def role_of(layer: "LayerProfile") -> str:
    if layer.macs > 0:
        if "Attention" in layer.type:
            return "attention"
        if "Conv" not in layer.type:
            return "matmul"
        out = math.prod(layer.output_shape) if layer.output_shape else 0
        # depthwise: the reduction is one input channel per group, so k is the kernel area (3x3,
        # 5x5, 7x7), over an input as large as the output (x4 at stride 2); a 1-channel first layer
        # has k = 9 too, but an input much smaller than its output
        k = layer.macs / (out * max(layer.calls, 1)) if out else 0
        ratio = layer.input_bytes / layer.output_bytes if layer.output_bytes else 0
        if round(k) in (9, 25, 49) and abs(k - round(k)) < 1e-9 and 0.5 <= ratio <= 4.5:
            return "dwconv"
        return "conv"
    if layer.type in NORMS:
        return "norm"
    if layer.type in LAYER_NORMS:
        return "layernorm"
    if layer.type in SIMPLE_ACTIVATIONS:
        return "simple_activation"
    if layer.type in ACTIVATIONS:
        return "activation"
    if "Residual" in layer.type:
        return "add"
    if "Pool" in layer.type and "AdaptiveAvg" not in layer.type:
        return "pool"  # (global average pooling is a reduction: an elementwise pass over its input)
    if layer.type in FREE or (layer.flops == 0 and layer.bytes == 0):
        return "free"
    return "elementwise"


def layer_work(layer: "LayerProfile", scale: float = 1.0, byte_scale: float = 1.0) -> LayerWork:
    """``layer`` at ``scale`` x its profiled batch, with activations and weights at ``byte_scale`` x their bytes."""
    role = role_of(layer)
    calls = max(layer.calls, 1)
    flops = layer.flops * scale
    nbytes = (layer.weight_bytes + layer.activation_bytes * scale) * byte_scale
    m = k = n = 0.0
    if role in ("conv", "matmul", "dwconv", "attention"):
        shape = layer.output_shape or ()
        out = math.prod(shape) * scale if shape else 0.0
        n = float(shape[1] if role == "conv" and len(shape) > 1 else shape[-1] if shape else 1)
        if out > 0:
            k = layer.macs * scale / (out * calls)
            m = out / n
        else:  # no output shape recorded: one output position
            k, m = float(layer.macs * scale / calls), 1.0
    bias_bytes = 0.0
    if role == "matmul" and len(layer.output_shape or ()) > 2 and round(layer.params - k * n) == n:
        bias_bytes = 2.0 * layer.output_bytes * scale * byte_scale  # (graph runtimes add it as its own node)
    return LayerWork(layer.name, layer.type, role, flops, nbytes, calls, m, k, n, bias_bytes)


def fused_roles(runtime: str) -> frozenset[str]:
    """The layer roles ``runtime`` (a catalog runtime or a backend name) fuses; none for an unknown name."""
    if runtime in CATALOG_FUSES:
        return CATALOG_FUSES[runtime]
    from trimnet.runtime.backend import all_backends

    return next((b.fuses for b in all_backends() if b.name == runtime), frozenset())


def fused(work: LayerWork, runtime: str) -> bool:
    return work.role in fused_roles(runtime)
