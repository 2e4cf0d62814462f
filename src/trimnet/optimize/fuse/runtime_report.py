"""What the runtimes fuse on their own: operator-level fusion (conv + bias + activation, GEMM epilogues).

That fusion is the runtime's job; ours is to hand it a graph it can fuse. This exports a
model to ONNX and counts operators three times: as exported, as onnxruntime optimizes it
(``SessionOptions.optimized_model_filepath``, the level our backend runs), and as OpenVINO
compiles it for the CPU (its runtime model lists, per executed node, the original layers
it absorbed). Run it on a model before and after ``fuse`` to see that nothing we do
blocks the runtime's own fusions.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from trimnet.errors import require

# nodes that carry no computation in OpenVINO's runtime model
_OV_PLUMBING = {"Input", "Output", "Const", "Parameter", "Result"}


def runtime_fusion(model: nn.Module, example_inputs: torch.Tensor, *, backends: tuple[str, ...] = ("onnxruntime", "openvino"),
                   threads: int | None = None) -> dict[str, Any]:
    """Operator counts of ``model``'s ONNX export, and of the graphs onnxruntime and OpenVINO actually run."""
    from trimnet.runtime import get_backend
    from trimnet.runtime.export import export_onnx_file

    require("onnx", "onnx")
    with tempfile.TemporaryDirectory(prefix="trimnet-fusion-") as tmp:
        with quiet_export_logs():
            path = export_onnx_file(model, Path(tmp) / "model.onnx", example_inputs)
        report: dict[str, Any] = {"exported": _onnx_ops(path)}
        for name in backends:
            why = get_backend(name).why_not()
            if why is not None:
                report[name] = {"skipped": why}
            elif name == "onnxruntime":
                report[name] = ort_optimized(path, Path(tmp) / "ort_optimized.onnx", threads)
            elif name == "openvino":
                report[name] = openvino_compiled(path, threads)
    return report


@contextlib.contextmanager
def quiet_export_logs() -> Iterator[None]:
    """The ONNX optimizer logs every rewrite at INFO; the CLI logs at INFO. Keep it off the user's screen."""
    loggers = [logging.getLogger(name) for name in ("onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def compare_runtime_fusion(before: nn.Module, after: nn.Module, example_inputs: torch.Tensor,
                           threads: int | None = None) -> dict[str, Any]:
    """``runtime_fusion`` of a model before and after our passes, with the node counts side by side."""
    a = runtime_fusion(before, example_inputs, threads=threads)
    b = runtime_fusion(after, example_inputs, threads=threads)
    nodes = {stage: {"before": a[stage].get("nodes"), "after": b[stage].get("nodes")} for stage in a if stage in b}
    return {"nodes": nodes, "before": a, "after": b}


def _onnx_ops(path: Path) -> dict[str, Any]:
    import onnx

    graph = onnx.load(str(path)).graph
    ops = Counter(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}" for n in graph.node)
    return {"nodes": sum(ops.values()), "ops": dict(sorted(ops.items()))}


def ort_optimized(path: Path, out: Path, threads: int | None = None, level: str = "all") -> dict[str, Any]:
    """The graph onnxruntime runs for ``path`` (saved by the session itself), as operator counts."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
                                     "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
                                     "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}[level]
    opts.optimized_model_filepath = str(out)
    opts.intra_op_num_threads = threads or 0
    opts.log_severity_level = 3  # saving an "all"-level graph warns that it is hardware specific: we only count it
    ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    return {**_onnx_ops(out), "level": level, "fused": _ort_fused(out), "version": ort.__version__}


def _ort_fused(path: Path) -> dict[str, int]:
    """Nodes that carry a fused activation (``FusedConv``, ``FusedGemm``, NCHWc convs), as ``op+activation``."""
    import onnx

    fused: Counter = Counter()
    for node in onnx.load(str(path)).graph.node:
        act = next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == "activation"), None)
        if act is not None:
            fused[f"{node.op_type}+{act.decode() if isinstance(act, bytes) else act}"] += 1
        elif node.op_type.startswith("QLinear") or node.op_type in ("MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul"):
            fused[node.op_type] += 1  # quantized kernels: QuantizeLinear/DequantizeLinear pairs folded into the op
    return dict(sorted(fused.items()))


def openvino_compiled(path: Path, threads: int | None = None, precision: str = "f32",
                      config: dict | None = None) -> dict[str, Any]:
    """The nodes OpenVINO's CPU plugin executes for ``path`` and the original layers each absorbed."""
    ov = require("openvino", "openvino")
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": precision, **(config or {})}
    if threads:
        cfg["INFERENCE_NUM_THREADS"] = int(threads)
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    ops: Counter = Counter()
    precisions: Counter = Counter()
    fused = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        kind = info["layerType"].astype(str)
        if kind in _OV_PLUMBING:
            continue
        ops[kind] += 1
        precisions[f"{kind}:{info['runtimePrecision'].astype(str)}"] += 1
        originals = [n for n in info["originalLayersNames"].astype(str).split(",") if n]
        if len(originals) > 1:
            fused.append({"node": op.get_friendly_name(), "type": kind, "absorbed": originals})
    return {"nodes": sum(ops.values()), "ops": dict(sorted(ops.items())), "precisions": dict(sorted(precisions.items())),
            "fused": fused, "version": ov.get_version()}
