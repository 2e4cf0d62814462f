"""What the onnxruntime methods share: metadata on quantized files and per-layer records read off the graph."""

from __future__ import annotations

from pathlib import Path

from trimnet.errors import require

COMPUTE = {"Conv", "ConvTranspose", "Gemm", "MatMul", "Attention"}
INTEGER = {"QLinearConv", "QLinearMatMul", "QGemm", "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul",
           "MatMulIntegerToFloat"}


def set_metadata(path: Path, metadata: dict[str, str]) -> None:
    onnx = require("onnx", "onnx")
    model = onnx.load(str(path))
    props = {p.key: p.value for p in model.metadata_props}
    props.update(metadata)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    from trimnet.files import atomic_path

    with atomic_path(path) as tmp:
        onnx.save(model, str(tmp))


def preprocessed(onnx_path: Path) -> Path:
    """``quant_pre_process`` of an fp32 export (shape inference, graph cleanup), as onnxruntime recommends
    before quantizing; the exporter's own shape annotations can disagree with onnx's inference otherwise."""
    from onnxruntime.quantization import quant_pre_process

    out = onnx_path.with_name(f"{onnx_path.stem}_pre.onnx")
    if not out.exists():
        quant_pre_process(str(onnx_path), str(out))
    return out


def qdq_layers(path: Path) -> list[dict]:
    """Per compute node of a QDQ model: whether its weights and inputs pass through Q/DQ, and how."""
    onnx = require("onnx", "onnx")
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    layers = []
    for node in graph.node:
        if node.op_type not in COMPUTE:
            continue
        row = {"layer": node.name, "op": node.op_type, "precision": "fp32"}
        parts = []
        for role, name in zip(("input", "weight"), node.input[:2]):
            dq = producer.get(name)
            if dq is None or dq.op_type != "DequantizeLinear":
                continue
            scale = inits.get(dq.input[1])
            zp = inits.get(dq.input[2]) if len(dq.input) > 2 else None
            n = int(numpy_helper.to_array(scale).size) if scale is not None else 1
            dtype = "uint8" if zp is not None and zp.data_type == onnx.TensorProto.UINT8 else "int8"
            parts.append(f"{role} {dtype} " + (f"per-channel ({n} scales)" if n > 1 else "per-tensor"))
        if parts:
            row["precision"] = "int8"
            row["quantized"] = ", ".join(parts)
        layers.append(row)
    return layers


def integer_layers(path: Path) -> list[dict]:
    """Per compute node of a dynamically quantized model: integer kernels and the float ones left."""
    onnx = require("onnx", "onnx")
    graph = onnx.load(str(path)).graph
    layers = []
    for node in graph.node:
        if node.op_type in INTEGER:
            layers.append({"layer": node.name, "op": node.op_type, "precision": "int8",
                           "quantized": "weights int8, inputs quantized per batch at run time"})
        elif node.op_type in COMPUTE:
            layers.append({"layer": node.name, "op": node.op_type, "precision": "fp32"})
    return layers


def ort_runtime_ops(path: Path, workdir: Path, threads: int | None) -> dict:
    """The operators onnxruntime runs for ``path`` after its own graph optimizations."""
    from trimnet.optimize.fuse.runtime_report import ort_optimized

    found = ort_optimized(path, workdir / f"{path.stem}.ort-optimized.onnx", threads)
    return {"runtime_ops": found["ops"], "runtime_fused": found["fused"], "onnxruntime": found["version"]}
