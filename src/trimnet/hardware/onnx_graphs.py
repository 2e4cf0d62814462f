"""Calibration operations as small ONNX graphs, built directly with ``onnx.helper`` (no export), and
timed through ``trimnet.runtime.load_runner`` with the options the benchmark harness uses."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from trimnet.hardware.measure import Op, time_call


def onnx_graph(op: Op | str, path: Path, repeat: int = 1) -> tuple[Path, tuple[int, ...]]:
    """Write a small ONNX model running ``op`` ``repeat`` times in a chain (or ``"tiny"``: one Relu
    on 4 values, ``repeat`` of them in a chain: Relu, Neg, Abs, Sigmoid in turn); return its path and input shape."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits: list = []
    nodes: list = []

    def const(name: str, value: np.ndarray) -> str:
        inits.append(numpy_helper.from_array(value.astype(np.float32), name))
        return name

    def weight(name: str, *shape: int) -> str:
        return const(name, rng.standard_normal(shape))

    def node(kind: str, inputs: list[str], out: str, **attrs) -> None:
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))

    if op == "tiny":
        shape: tuple[int, ...] = (1, 4)
        kinds = ("Relu", "Neg", "Abs", "Sigmoid")  # varied, so that no runtime drops a repeat as a no-op
        for i in range(repeat):
            node(kinds[i % len(kinds)], ["x" if i == 0 else f"h{i - 1}"], "y" if i == repeat - 1 else f"h{i}")
    else:
        kind = op.kind
        if repeat > 1 and not op.chains:
            raise ValueError(f"{op.label()} is not timed in a chain")
        shape = tuple(op.shape)
        if kind == "matmul":
            shape = op.shape[:2]
            prev = "x"
            for i in range(repeat):
                out = "y" if i == repeat - 1 else f"h{i}"
                node("MatMul", [prev, weight(f"w{i}", op.shape[1], op.shape[2])], out)
                prev = out
        elif kind in ("conv", "dwconv"):
            b, cin, cout, hw, k, groups = op.shape
            shape = (b, cin, hw, hw)
            prev = "x"
            for i in range(repeat):
                out = "y" if i == repeat - 1 else f"h{i}"
                node("Conv", [prev, weight(f"w{i}", cout, cin // groups, k, k)], out, pads=[k // 2] * 4, group=groups,
                     kernel_shape=[k, k])
                prev = out
        elif kind == "norm":
            c = op.shape[1]
            node("BatchNormalization", ["x", weight("s", c), weight("b", c), weight("m", c),
                                        const("v", np.abs(rng.standard_normal(c)) + 1)], "y")
        elif kind == "pool":
            node("MaxPool", ["x"], "y", kernel_shape=[2, 2], strides=[2, 2])
        elif kind == "add":
            node("Add", ["x", weight("c", *op.shape)], "y")
        elif kind == "gelu":  # as the exporter writes it: x * 0.5 * (1 + erf(x / sqrt(2)))
            node("Div", ["x", const("c_sqrt2", np.array(math.sqrt(2.0)))], "g0")
            node("Erf", ["g0"], "g1")
            node("Add", ["g1", const("c_one", np.array(1.0))], "g2")
            node("Mul", ["x", "g2"], "g3")
            node("Mul", ["g3", const("c_half", np.array(0.5))], "y")
        elif kind == "layernorm":
            d = op.shape[-1]
            node("LayerNormalization", ["x", weight("s", d), weight("b", d)], "y", axis=-1)
        elif kind == "attention":  # heads split off (B, N, H*E), softmax(q k^T / sqrt(e)) v, heads merged back
            bh, n, e = op.shape
            shape = (1, n, bh * e)
            # q, k and v each split from x by a transpose of its own, as a model's three projections are: the
            # same split spelled three ways (-1 and 0 in a Reshape), which the runtime's common-subexpression
            # elimination cannot merge into one
            splits = {"q": [1, n, bh, e], "k": [1, n, -1, e], "v": [0, -1, bh, e]}
            merged = numpy_helper.from_array(np.array([1, n, bh * e], dtype=np.int64), "merged")
            inits.append(merged)
            for t, dims in splits.items():
                inits.append(numpy_helper.from_array(np.array(dims, dtype=np.int64), f"heads_{t}"))
                node("Reshape", ["x", f"heads_{t}"], f"{t}0")
                node("Transpose", [f"{t}0"], t, perm=[0, 2, 1, 3])
            node("Transpose", ["k"], "kt", perm=[0, 1, 3, 2])
            node("MatMul", ["q", "kt"], "s0")
            node("Mul", ["s0", const("scale", np.array(1.0 / math.sqrt(e)))], "s1")
            node("Softmax", ["s1"], "p", axis=-1)
            node("MatMul", ["p", "v"], "o")
            node("Transpose", ["o"], "o1", perm=[0, 2, 1, 3])
            node("Reshape", ["o1", "merged"], "y")
        else:
            node("Relu", ["x"], "y")
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


def onnx_time(backend: str, options: dict, op: Op | str, workdir: Path, seconds: float,
              clock: str = "wall") -> tuple[float, str]:
    """Median seconds per ``runner.run`` of ``op``'s graph on ``backend``, and the precision that ran."""
    runner, x = onnx_runner(backend, options, op, workdir)
    try:
        return time_call(lambda: runner.run(x), seconds, clock=clock), runner.precision
    finally:
        runner.close()
