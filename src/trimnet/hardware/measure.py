"""The operations calibration times, and how each is timed on each backend.

Every operation is one kernel a model's layers are made of: a matrix product (``Linear``,
attention projections), a convolution, an elementwise pass (activations, norms, adds,
pooling) and a GELU (several elementwise passes in an ONNX graph). PyTorch runs them as
function calls; ONNX backends run a one-node (or few-node) ONNX graph built directly with
``onnx.helper`` (no export), loaded through ``trimnet.runtime.load_runner`` with the same
options the benchmark harness uses.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ELEMENT_BYTES = {"fp32": 4, "bf16": 2}


@dataclass(frozen=True)
class Op:
    """``matmul`` (m, k, n): x[m,k] @ w[k,n]; ``conv`` (batch, cin, cout, hw, kernel, groups): stride 1,
    same padding; ``elementwise`` / ``gelu`` (numel,)."""

    kind: str
    shape: tuple[int, ...]

    def gemm(self) -> tuple[int, int, int]:
        """(m, k, n) of the equivalent matrix product: output positions, reduction length, output channels."""
        if self.kind == "matmul":
            return self.shape  # type: ignore[return-value]
        if self.kind == "conv":
            b, cin, cout, hw, k, g = self.shape
            return b * hw * hw, cin // g * k * k, cout
        return self.shape[0], 1, 1

    @property
    def flops(self) -> float:
        if self.kind in ("matmul", "conv"):
            m, k, n = self.gemm()
            return 2.0 * m * k * n
        return (5.0 if self.kind == "gelu" else 1.0) * self.shape[0]

    def bytes(self, dtype: str) -> float:
        e = ELEMENT_BYTES[dtype]
        if self.kind == "matmul":
            m, k, n = self.shape
            return float(e * (m * k + k * n + m * n))
        if self.kind == "conv":
            b, cin, cout, hw, k, g = self.shape
            return float(e * (b * cin * hw * hw + cout * cin // g * k * k + b * cout * hw * hw))
        return float(e * 2 * self.shape[0])

    @property
    def chains(self) -> bool:
        """Whether its output can feed a copy of itself (so a chain of copies measures it without the
        graph-boundary layout conversions a lone node pays)."""
        if self.kind == "matmul":
            return self.shape[1] == self.shape[2]
        if self.kind == "conv":
            return self.shape[1] == self.shape[2]
        return False

    def label(self) -> str:
        return f"{self.kind} " + "x".join(str(d) for d in self.shape)


def _ops(matmuls, convs, elementwise, gelu) -> list[Op]:
    return ([Op("matmul", s) for s in matmuls] + [Op("conv", s) for s in convs]
            + [Op("elementwise", (n,)) for n in elementwise] + [Op("gelu", (n,)) for n in gelu])


# Shapes span the reduction length (9 .. 2304), the output channels (16 .. 1024) and the
# output positions (1 .. 4096) that small and ImageNet-size models have. Most keep their
# shape (cin == cout, k == n) so that graph runtimes can time them inside a chain; the
# few that do not are first layers (1 or 3 input channels), timed alone.
FULL_OPS = _ops(
    matmuls=[(1, 8, 8), (1, 256, 256), (1, 1024, 1024), (8, 512, 512), (32, 1024, 1024), (128, 64, 64),
             (128, 1024, 1024), (512, 256, 256), (512, 128, 128), (1024, 1024, 1024)],
    convs=[(1, 1, 32, 16, 3, 1), (1, 3, 32, 32, 3, 1), (16, 3, 32, 32, 3, 1), (1, 16, 16, 64, 3, 1),
           (1, 32, 32, 32, 3, 1), (1, 64, 64, 16, 3, 1), (8, 64, 64, 16, 3, 1), (1, 128, 128, 8, 3, 1),
           (32, 32, 32, 8, 3, 1), (1, 256, 256, 14, 3, 1), (1, 512, 512, 4, 3, 1), (1, 128, 128, 28, 1, 1),
           (1, 512, 512, 7, 1, 1), (1, 96, 96, 28, 3, 96), (8, 32, 32, 32, 3, 32)],
    elementwise=[1024, 16_384, 262_144, 2_097_152, 16_777_216],
    gelu=[262_144],
)
QUICK_OPS = _ops(
    matmuls=[(1, 8, 8), (1, 1024, 1024), (32, 256, 256), (128, 64, 64), (512, 512, 512)],
    convs=[(1, 1, 32, 16, 3, 1), (16, 3, 32, 32, 3, 1), (1, 64, 64, 16, 3, 1), (32, 32, 32, 8, 3, 1),
           (1, 256, 256, 14, 3, 1), (1, 128, 128, 28, 1, 1), (1, 96, 96, 28, 3, 96)],
    elementwise=[1024, 65_536, 1_048_576, 8_388_608],
    gelu=[262_144],
)
CHAIN_REPEAT = 3  # copies of a shape-keeping op in the graph that times it inside a chain
CHAIN_LENGTH = 32  # tiny layers in the chain that measures per-layer overhead


# ---------------------------------------------------------------- timing

def time_call(fn: Callable[[], object], seconds: float, *, min_reps: int = 5, max_reps: int = 5000) -> float:
    """Median seconds per call of ``fn`` over about ``seconds`` of calls, after warm-up calls.

    A call slower than the budget gets one warm-up and three timed runs, so a slow kernel
    (bf16 emulated on a CPU without bf16 instructions) costs seconds, not minutes.
    """
    t0 = time.perf_counter()
    fn()
    if time.perf_counter() - t0 < seconds:
        fn()
    else:
        min_reps = min(min_reps, 3)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_reps and (len(times) < min_reps or time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


# ---------------------------------------------------------------- PyTorch

def torch_op(op: Op, dtype: str, device: str) -> Callable[[], object]:
    """A zero-argument call running ``op`` once (synchronized on CUDA)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    dt = DTYPES[dtype]

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g).to(device=device, dtype=dt)

    if op.kind == "matmul":
        m, k, n = op.shape
        x, w = rand(m, k), rand(n, k)
        fn: Callable[[], object] = lambda: F.linear(x, w)  # noqa: E731
    elif op.kind == "conv":
        b, cin, cout, hw, k, groups = op.shape
        x, w = rand(b, cin, hw, hw), rand(cout, cin // groups, k, k)
        fn = lambda: F.conv2d(x, w, padding=k // 2, groups=groups)  # noqa: E731
    elif op.kind == "elementwise":
        x = rand(op.shape[0])
        fn = lambda: torch.relu(x)  # noqa: E731
    else:
        x = rand(op.shape[0])
        fn = lambda: F.gelu(x)  # noqa: E731
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


def torch_module_times(backend: str, threads: int | None, seconds: float, device: str) -> dict[str, float]:
    """Time per call of a 1-layer and a ``CHAIN_LENGTH``-layer stack of tiny ``Linear`` through a runner."""
    from torch import nn

    from trimnet.runtime import load_runner

    out = {}
    for n in (1, CHAIN_LENGTH):
        torch.manual_seed(0)
        model = nn.Sequential(*[nn.Linear(8, 8, bias=False) for _ in range(n)]).eval()
        x = torch.randn(1, 8)
        options = {"threads": threads} if threads and backend in ("torch", "torch-compile") else {}
        runner = load_runner(backend, model, x, check=False, **options)
        try:
            xn = x.numpy()
            out[f"layers_{n}"] = time_call(lambda: runner.run(xn), seconds)
        finally:
            runner.close()
    return out


# ---------------------------------------------------------------- ONNX backends

def onnx_graph(op: Op | str, path: Path, repeat: int = 1) -> tuple[Path, tuple[int, ...]]:
    """Write a small ONNX model running ``op`` ``repeat`` times in a chain (or ``"tiny"``: one Relu on 4
    values; ``"chain"``: ``CHAIN_LENGTH`` 8x8 MatMuls); return its path and input shape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits: list = []
    nodes: list = []

    def weight(name: str, *shape: int) -> str:
        inits.append(numpy_helper.from_array(rng.standard_normal(shape).astype(np.float32), name))
        return name

    if op == "tiny":
        shape: tuple[int, ...] = (1, 4)
        nodes.append(helper.make_node("Relu", ["x"], ["y"]))
    elif op == "chain":
        shape = (1, 8)
        prev = "x"
        for i in range(CHAIN_LENGTH):
            out = "y" if i == CHAIN_LENGTH - 1 else f"h{i}"
            nodes.append(helper.make_node("MatMul", [prev, weight(f"w{i}", 8, 8)], [out]))
            prev = out
    elif op.kind in ("matmul", "conv"):
        if repeat > 1 and not op.chains:
            raise ValueError(f"{op.label()} changes its shape and cannot be chained")
        prev = "x"
        for i in range(repeat):
            out = "y" if i == repeat - 1 else f"h{i}"
            if op.kind == "matmul":
                m, k, n = op.shape
                shape = (m, k)
                nodes.append(helper.make_node("MatMul", [prev, weight(f"w{i}", k, n)], [out]))
            else:
                b, cin, cout, hw, k, groups = op.shape
                shape = (b, cin, hw, hw)
                nodes.append(helper.make_node("Conv", [prev, weight(f"w{i}", cout, cin // groups, k, k)], [out],
                                              pads=[k // 2] * 4, group=groups, kernel_shape=[k, k]))
            prev = out
    elif op.kind == "elementwise":
        shape = (1, op.shape[0])
        nodes.append(helper.make_node("Relu", ["x"], ["y"]))
    else:  # gelu as the exporter writes it: x * 0.5 * (1 + erf(x / sqrt(2)))
        shape = (1, op.shape[0])
        for name, value in (("c_sqrt2", math.sqrt(2.0)), ("c_one", 1.0), ("c_half", 0.5)):
            inits.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))
        nodes += [helper.make_node("Div", ["x", "c_sqrt2"], ["g0"]), helper.make_node("Erf", ["g0"], ["g1"]),
                  helper.make_node("Add", ["g1", "c_one"], ["g2"]), helper.make_node("Mul", ["x", "g2"], ["g3"]),
                  helper.make_node("Mul", ["g3", "c_half"], ["y"])]
    graph = helper.make_graph(nodes, "calibration", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], producer_name="trimnet")
    model.ir_version = 9
    onnx.save(model, str(path))
    return path, shape


def onnx_runner(backend: str, options: dict, op: Op | str, workdir: Path, repeat: int = 1):
    """A runner of ``op``'s graph on ``backend`` (close it when done) and an input for it."""
    from trimnet.runtime import load_runner

    name = (op if isinstance(op, str) else op.label().replace(" ", "_")) + f"_x{repeat}"
    path, shape = onnx_graph(op, workdir / f"{name}.onnx", repeat)
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    return load_runner(backend, None, torch.from_numpy(x), check=False, exported=path, **options), x


def onnx_time(backend: str, options: dict, op: Op | str, workdir: Path, seconds: float) -> tuple[float, str]:
    """Median seconds per ``runner.run`` of ``op``'s graph on ``backend``, and the precision that ran."""
    runner, x = onnx_runner(backend, options, op, workdir)
    try:
        return time_call(lambda: runner.run(x), seconds), runner.precision
    finally:
        runner.close()
