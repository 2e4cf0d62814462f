"""The operations calibration times, and how each is timed on each backend.

Each operation is a kernel that models' layers are made of: matrix products and
convolutions (fitted as GEMM-shaped efficiency curves), and the passes whose time follows the
bytes they move or the work they do: ReLU, batch norm, max pooling, residual add, GELU,
layer norm, depthwise convolution and scaled-dot-product attention. PyTorch runs them as
function calls (here); ONNX backends run them as small ONNX graphs (``onnx_graphs``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ELEMENT_BYTES = {"fp32": 4, "bf16": 2}
GEMM_KINDS = ("matmul", "conv")
# kinds fitted as time = t0 + amount / rate(amount); amount is bytes moved, or FLOPs for attention
PASS_KINDS = ("elementwise", "norm", "pool", "add", "gelu", "layernorm", "dwconv", "attention")


@dataclass(frozen=True)
class Op:
    """A measured operation.

    ``matmul`` (m, k, n): x[m,k] @ w[k,n]; ``conv`` / ``dwconv`` (batch, cin, cout, hw, kernel,
    groups): stride 1, same padding; ``norm`` / ``pool`` (batch, channels, h, w); ``layernorm``
    (rows, dim); ``attention`` (batch x heads, tokens, head dim); the others (numel,).
    """

    kind: str
    shape: tuple[int, ...]

    def gemm(self) -> tuple[int, int, int]:
        """(m, k, n) of the equivalent matrix product: output positions, reduction length, output channels."""
        if self.kind == "matmul":
            return self.shape  # type: ignore[return-value]
        if self.kind in ("conv", "dwconv"):
            b, cin, cout, hw, k, g = self.shape
            return b * hw * hw, cin // g * k * k, cout
        return math.prod(self.shape), 1, 1

    @property
    def flops(self) -> float:
        if self.kind in ("matmul", "conv", "dwconv"):
            m, k, n = self.gemm()
            return 2.0 * m * k * n
        if self.kind == "attention":
            bh, n, e = self.shape
            scores = bh * n * n
            return 2.0 * scores * 2 * e + 6.0 * scores  # the profiler's formula: Q.K^T and P.V, scale + softmax
        per_element = {"gelu": 5, "norm": 4, "layernorm": 6, "pool": 4 / 4}.get(self.kind, 1)
        return float(per_element * math.prod(self.shape))

    def bytes(self, dtype: str) -> float:
        e = ELEMENT_BYTES[dtype]
        n = math.prod(self.shape)
        if self.kind == "matmul":
            m, k, nn = self.shape
            return float(e * (m * k + k * nn + m * nn))
        if self.kind in ("conv", "dwconv"):
            b, cin, cout, hw, k, g = self.shape
            return float(e * (b * cin * hw * hw + cout * cin // g * k * k + b * cout * hw * hw))
        if self.kind == "pool":
            return float(e * n * 1.25)  # 2x2 windows: the output is a quarter of the input
        if self.kind == "add":
            return float(e * n * 3)
        if self.kind == "attention":
            return float(e * n * 4)  # q, k, v and the output
        return float(e * n * 2)

    def amount(self, dtype: str) -> float:
        """What a pass kind's time is fitted against: FLOPs for attention, bytes for the others."""
        return self.flops if self.kind == "attention" else self.bytes(dtype)

    @property
    def chains(self) -> bool:
        """Whether graph runtimes time it as the slope of a chain of copies (see ``onnx_graph``).

        Only convolutions and matrix products that keep their shape: a lone node pays layout
        conversions at the graph's edges that a model pays once; elementwise chains would be fused.
        """
        return self.kind in ("matmul", "conv", "dwconv") and self.shape[1] == self.shape[2]

    def label(self) -> str:
        return f"{self.kind} " + "x".join(str(d) for d in self.shape)


def _ops(matmuls, convs, passes) -> list[Op]:
    return [Op("matmul", s) for s in matmuls] + [Op("conv", s) for s in convs] + [Op(k, s) for k, s in passes]


# Shapes span the reduction length (9 .. 4608), the output channels (16 .. 1024) and the
# output positions (1 .. 4096) that small and ImageNet-size models have (convolutions down to 2x2
# maps: a late 1x1 convolution of MobileNetV2 or ResNet reads more weights than activations). Most keep their
# shape (cin == cout, k == n) so that graph runtimes can time them inside a chain; the
# few that do not are first layers (1 or 3 input channels), timed alone.
FULL_OPS = _ops(
    matmuls=[(1, 8, 8), (1, 256, 256), (1, 1024, 1024), (8, 512, 512), (32, 1024, 1024), (128, 64, 64),
             (128, 1024, 1024), (512, 256, 256), (512, 128, 128), (1024, 1024, 1024)],
    convs=[(1, 1, 32, 16, 3, 1), (1, 3, 32, 32, 3, 1), (16, 3, 32, 32, 3, 1), (1, 16, 16, 64, 3, 1),
           (1, 32, 32, 32, 3, 1), (1, 64, 64, 16, 3, 1), (8, 64, 64, 16, 3, 1), (1, 128, 128, 8, 3, 1),
           (32, 32, 32, 8, 3, 1), (1, 256, 256, 14, 3, 1), (1, 512, 512, 4, 3, 1), (1, 128, 128, 28, 1, 1),
           (1, 512, 512, 7, 1, 1), (1, 256, 256, 2, 1, 1), (1, 384, 384, 3, 1, 1)],
    # each pass kind from a few values (its fixed cost) to a few MB (outputs stay under 32 MB:
    # larger ones are fresh pages from the OS on every call, which measures page faults)
    passes=[("elementwise", (64,)), ("elementwise", (16_384,)), ("elementwise", (262_144,)),
            ("elementwise", (2_097_152,)), ("elementwise", (6_291_456,)),
            ("norm", (1, 4, 4, 4)), ("norm", (1, 32, 16, 16)), ("norm", (8, 64, 32, 32)), ("norm", (16, 128, 32, 32)),
            ("pool", (1, 4, 4, 4)), ("pool", (1, 32, 16, 16)), ("pool", (8, 64, 32, 32)), ("pool", (16, 128, 32, 32)),
            ("add", (64,)), ("add", (16_384,)), ("add", (524_288,)), ("add", (2_097_152,)),
            ("gelu", (64,)), ("gelu", (16_384,)), ("gelu", (262_144,)),
            ("layernorm", (4, 16)), ("layernorm", (16, 64)), ("layernorm", (2048, 256)),
            ("dwconv", (1, 4, 4, 4, 3, 4)), ("dwconv", (1, 32, 32, 16, 3, 32)), ("dwconv", (1, 96, 96, 28, 3, 96)),
            ("dwconv", (8, 144, 144, 28, 3, 144)),
            # attention from a few long heads to many short ones (``attention.fit_attention``)
            ("attention", (1, 4, 8)), ("attention", (2, 16, 32)), ("attention", (32, 64, 32)),
            ("attention", (24, 128, 64)), ("attention", (96, 8, 32)), ("attention", (128, 16, 8)),
            ("attention", (48, 32, 16)), ("attention", (16, 8, 64))],
)
QUICK_OPS = _ops(
    matmuls=[(1, 8, 8), (1, 1024, 1024), (32, 256, 256), (128, 64, 64), (512, 512, 512)],
    convs=[(1, 1, 32, 16, 3, 1), (16, 3, 32, 32, 3, 1), (1, 64, 64, 16, 3, 1), (32, 32, 32, 8, 3, 1),
           (1, 256, 256, 14, 3, 1), (1, 128, 128, 28, 1, 1)],
    passes=[("elementwise", (64,)), ("elementwise", (65_536,)), ("elementwise", (1_048_576,)),
            ("elementwise", (6_291_456,)), ("norm", (1, 4, 4, 4)), ("norm", (8, 64, 32, 32)),
            ("pool", (1, 4, 4, 4)), ("pool", (8, 64, 32, 32)), ("add", (64,)), ("add", (524_288,)),
            ("gelu", (64,)), ("gelu", (262_144,)), ("layernorm", (4, 16)), ("layernorm", (2048, 256)),
            ("dwconv", (1, 4, 4, 4, 3, 4)), ("dwconv", (1, 96, 96, 28, 3, 96)),
            ("attention", (1, 4, 8)), ("attention", (2, 16, 32)), ("attention", (32, 64, 32)),
            ("attention", (96, 8, 32)), ("attention", (128, 16, 8)), ("attention", (48, 32, 16))],
)
CHAIN_LENGTH = 30  # tiny layers in the chain that measures per-layer overhead
CHAIN_REPEAT = 3  # copies of a shape-keeping GEMM in the graph that times it inside a chain


# ---------------------------------------------------------------- timing

CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def time_call(fn: Callable[[], object], seconds: float, *, clock: str = "wall", min_reps: int = 5,
              max_reps: int = 5000) -> float:
    """Seconds per call of ``fn``: the lower quartile of about ``seconds`` of calls, after warm-up calls.

    The lower quartile rather than the median because other processes only ever add time: on a
    quiet machine the two differ by a few percent, on a loaded one the median drifts with the
    load. ``clock``: "wall" (elapsed time) or "cpu" (this process's CPU time: with one thread,
    the time other processes cannot add to). A call slower than the budget gets one warm-up and
    three timed runs, so a slow kernel (bf16 emulated on a CPU without bf16 instructions) costs
    seconds, not minutes.
    """
    now = CLOCKS[clock]
    t0 = now()
    fn()
    if now() - t0 < seconds:
        fn()
    else:
        min_reps = min(min_reps, 3)
    times: list[float] = []
    start = now()
    while len(times) < max_reps and (len(times) < min_reps or now() - start < seconds):
        t0 = now()
        fn()
        times.append(now() - t0)
    return float(np.percentile(times, 25))


# ---------------------------------------------------------------- PyTorch

def torch_op(op: Op, dtype: str, device: str) -> Callable[[], object]:
    """A zero-argument call running ``op`` once (synchronized on CUDA)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    dt = DTYPES[dtype]

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dt)

    kind, shape = op.kind, op.shape
    if kind == "matmul":
        m, k, n = shape
        x, w = rand(m, k), rand(n, k)
        fn: Callable[[], object] = lambda: F.linear(x, w)  # noqa: E731
    elif kind in ("conv", "dwconv"):
        b, cin, cout, hw, k, groups = shape
        x, w = rand(b, cin, hw, hw), rand(cout, cin // groups, k, k)
        fn = lambda: F.conv2d(x, w, padding=k // 2, groups=groups)  # noqa: E731
    elif kind == "norm":
        x, c = rand(*shape), shape[1]
        mean, var, weight, bias = rand(c), rand(c).abs() + 1, rand(c), rand(c)
        fn = lambda: F.batch_norm(x, mean, var, weight, bias, training=False)  # noqa: E731
    elif kind == "pool":
        x = rand(*shape)
        fn = lambda: F.max_pool2d(x, 2)  # noqa: E731
    elif kind == "add":
        x, y = rand(*shape), rand(*shape)
        fn = lambda: x + y  # noqa: E731
    elif kind == "gelu":
        x = rand(*shape)
        fn = lambda: F.gelu(x)  # noqa: E731
    elif kind == "layernorm":
        x, d = rand(*shape), shape[-1]
        weight, bias = rand(d), rand(d)
        fn = lambda: F.layer_norm(x, (d,), weight, bias)  # noqa: E731
    elif kind == "attention":  # what a self-attention layer does besides its projections
        bh, n, e = shape
        x = rand(1, n, bh * e)

        def fn() -> torch.Tensor:
            q, k_, v = (x.view(1, n, bh, e).transpose(1, 2) for _ in range(3))
            return F.scaled_dot_product_attention(q, k_, v).transpose(1, 2).reshape(1, n, bh * e)
    else:
        x = rand(*shape)
        fn = lambda: torch.relu(x)  # noqa: E731
    if device.startswith("cuda"):
        def run() -> None:
            with torch.inference_mode():
                fn()
            torch.cuda.synchronize()
        return run

    def run_cpu() -> None:
        with torch.inference_mode():
            fn()
    return run_cpu


def tiny_chain(n: int) -> torch.nn.Module:
    """``n`` tiny layers of the kinds models are made of (conv, norm, activations, pooling), so that
    the chain runs through as many different code paths as a model does."""
    from torch import nn

    c = CHAIN_INPUT[1]
    pattern = [lambda: nn.Conv2d(c, c, 3, padding=1, bias=False), lambda: nn.BatchNorm2d(c), nn.ReLU,
               lambda: nn.Conv2d(c, c, 1), nn.GELU, lambda: nn.MaxPool2d(3, stride=1, padding=1)]
    torch.manual_seed(0)
    return nn.Sequential(*[pattern[i % len(pattern)]() for i in range(n)]).eval()


CHAIN_INPUT = (1, 4, 4, 4)


def torch_module_times(backend: str, threads: int | None, seconds: float, clock: str = "wall") -> dict[str, float]:
    """A 1-layer and a ``CHAIN_LENGTH``-layer ``tiny_chain`` run whole through a runner (``whole_1``,
    ``whole_N``), and the sums of their operators each timed alone as a function call (``alone_1``,
    ``alone_N``): the difference is what a layer costs inside a model beyond its kernel."""
    from trimnet.runtime import load_runner

    out = {}
    x = torch.randn(*CHAIN_INPUT)
    from trimnet.runtime import get_backend

    options = {"threads": threads} if threads and "threads" in get_backend(backend).options else {}
    for n in (1, CHAIN_LENGTH):
        chain = tiny_chain(n)
        runner = load_runner(backend, chain, x, check=False, **options)
        try:
            xn = x.numpy()
            out[f"whole_{n}"] = time_call(lambda: runner.run(xn), seconds, clock=clock)
        finally:
            runner.close()
        calls = [_functional(layer) for layer in chain]
        with torch.inference_mode():
            inputs = [x]
            for call in calls[:-1]:
                inputs.append(call(inputs[-1]))
            out[f"alone_{n}"] = sum(time_call(lambda c=c, h=h: c(h), seconds / n, clock=clock)
                                    for c, h in zip(calls, inputs))
    return out


def _functional(layer: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """The operator a tiny-chain layer runs, without the module around it."""
    import torch.nn.functional as F
    from torch import nn

    if isinstance(layer, nn.Conv2d):
        w, b, pad = layer.weight.detach(), layer.bias.detach() if layer.bias is not None else None, layer.padding
        return lambda h: F.conv2d(h, w, b, padding=pad)
    if isinstance(layer, nn.BatchNorm2d):
        m, v, w, b = layer.running_mean, layer.running_var, layer.weight.detach(), layer.bias.detach()
        return lambda h: F.batch_norm(h, m, v, w, b, training=False)
    if isinstance(layer, nn.MaxPool2d):
        return lambda h: F.max_pool2d(h, 3, stride=1, padding=1)
    if isinstance(layer, nn.GELU):
        return F.gelu
    return torch.relu
