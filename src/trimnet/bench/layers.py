"""Per-layer latency on onnxruntime: its own profiler's kernel times, mapped back to module names.

The exporter records the module path of every ONNX node (``pkg.torch.onnx.name_scopes``);
onnxruntime's profile names the nodes it ran, including the ones its graph optimizer fused
(``fused node_linear``, ``relu_nchwc``). Each kernel's time goes to the module of the node it
came from; layout changes the runtime inserted itself are reported as ``(runtime layout)``.
"""

from __future__ import annotations

import ast
import json
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trimnet.errors import require

RUNTIME = "(runtime layout)"


def module_of_nodes(onnx_path: Path) -> dict[str, str]:
    """ONNX node name -> the module path it was exported from ("" for the top level)."""
    onnx = require("onnx", "onnx")
    out = {}
    for node in onnx.load(str(onnx_path), load_external_data=False).graph.node:
        props = {p.key: p.value for p in node.metadata_props}
        scopes = props.get("pkg.torch.onnx.name_scopes")
        try:
            names = ast.literal_eval(scopes) if scopes else []
        except (ValueError, SyntaxError):
            names = []
        out[node.name] = ".".join(n for n in names[1:-1] if n) if len(names) > 2 else ""
    return out


def _owner(kernel: str, modules: dict[str, str]) -> str:
    name = kernel.removesuffix("_kernel_time").removeprefix("fused ")
    for suffix in ("", "_nchwc", "_token_0"):
        base = name.removesuffix(suffix) if suffix else name
        for candidate in (base, f"node_{base}"):
            if candidate in modules:
                return modules[candidate] or "(top level)"
    return RUNTIME


def layer_latency(model: nn.Module | None, example: torch.Tensor, *, onnx_path: Path | None = None,
                  threads: int = 1, runs: int = 200) -> list[dict]:
    """Per module: kernel time per call (ms, the median over ``runs`` calls) on onnxruntime's CPU provider."""
    ort = require("onnxruntime", "onnx")
    with tempfile.TemporaryDirectory(prefix="trimnet-layers-") as tmp:
        if onnx_path is None:
            from trimnet.runtime.export import export_onnx_file

            onnx_path = export_onnx_file(model, Path(tmp) / "model.onnx", example)
        modules = module_of_nodes(onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(Path(tmp) / "profile")
        opts.log_severity_level = 3
        session = ort.InferenceSession(str(onnx_path), opts, providers=["CPUExecutionProvider"])
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(example.numpy(), dtype=np.float32)}
        for _ in range(runs):
            session.run(None, feed)
        events = json.loads(Path(session.end_profiling()).read_text())
    durations: dict[str, list[float]] = {}
    for e in events:
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
            durations.setdefault(e["name"], []).append(e.get("dur", 0) / 1e3)  # µs -> ms
    # each kernel runs once a call: its median over the calls, robust to a call that other work delayed
    totals: dict[str, float] = {}
    for kernel, times in durations.items():
        owner = _owner(kernel, modules)
        totals[owner] = totals.get(owner, 0.0) + float(np.median(times))
    return [{"name": name, "ms": ms} for name, ms in totals.items()]
