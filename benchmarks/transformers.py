"""Hugging Face encoders: the original on eager PyTorch and on its best exported runtime against
trimnet's optimized version (attention heads and FFN neurons pruned, then INT8), side by side.

Models are built from config objects with random weights (nothing is downloaded), so accuracy
is *not* measured here: the figures are speed only. The pruned model keeps the same
architecture family, sequence length / image size and batch.

    python benchmarks/transformers.py [--ratio 0.5] [--rounds 5] [--models bert,distilbert,vit-small]

Each runner is timed in interleaved rounds (every round calls every runner once per batch
size, starting from a different one), and the medians are reported with the load average.
Writes benchmarks/results/transformers.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

# this file shares its name with the transformers package: keep its own folder off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np
import torch

import trimnet as tn
from trimnet.models.families import wrap

THREADS = 2
OUT = Path(__file__).parent / "results" / "transformers.json"
SEQ = 128


def build(name: str):
    import transformers as T

    torch.manual_seed(0)
    if name == "bert-base":
        hf = T.BertForSequenceClassification(T.BertConfig(num_labels=2))  # 12 x 768, 12 heads, FFN 3072
    elif name == "distilbert":
        hf = T.DistilBertForSequenceClassification(T.DistilBertConfig(num_labels=2))  # 6 x 768, 12 heads, 3072
    elif name == "vit-small":
        hf = T.ViTForImageClassification(T.ViTConfig(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                                     intermediate_size=1536, image_size=224, patch_size=16,
                                                     num_labels=1000))
    else:
        raise SystemExit(f"unknown model {name}; choose bert-base, distilbert, vit-small")
    return wrap(hf, seq_len=SEQ).eval()


def ort_runner(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    name, out = sess.get_inputs()[0].name, [sess.get_outputs()[0].name]
    return lambda x: sess.run(out, {name: x})[0]


def ov_runner(path: Path, precision: str | None):
    import openvino as ov

    core = ov.Core()
    cfg = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": THREADS}
    if precision:
        cfg["INFERENCE_PRECISION_HINT"] = precision
    compiled = core.compile_model(core.read_model(str(path)), "CPU", cfg)
    request = compiled.create_infer_request()
    return lambda x: request.infer(x, share_inputs=True)[0]


def torch_runner(model):
    def run(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run


def int8(model, tmp: Path, kind: str, calibration: np.ndarray) -> Path:
    """trimnet's INT8 methods, called as ``tn.quantize`` calls them (without its accuracy pass:
    the weights are random)."""
    from trimnet.optimize.quantize.config import QuantizeConfig
    from trimnet.optimize.quantize.method import BuildContext, get_method

    precision, backend = kind.split("@")
    ctx = BuildContext(model=model, config=QuantizeConfig(precision=precision, backend=backend, threads=THREADS,
                                                          calibration=len(calibration)),
                       calibration=calibration, workdir=tmp, metadata={})
    return get_method(precision, backend).build(ctx).file


def timed_rounds(runners: dict, inputs: dict[int, np.ndarray], rounds: int) -> dict:
    times = {(n, b): [] for n in runners for b in inputs}
    names = list(runners)
    for b, x in inputs.items():
        for n in names:
            runners[n](x)  # warm-up
        for k in range(rounds if b > 1 else rounds * 4):
            for n in names[k % len(names):] + names[:k % len(names)]:
                t0 = time.perf_counter()
                runners[n](x)
                times[(n, b)].append(time.perf_counter() - t0)
    return {f"{n}|{b}": statistics.median(t) for (n, b), t in times.items()}


def run_model(name: str, ratio: float, rounds: int, ov_int8: bool) -> dict:
    t_start = time.perf_counter()
    model = build(name)
    x1 = model.sample_inputs(1, torch.Generator().manual_seed(0))
    x32 = model.sample_inputs(32, torch.Generator().manual_seed(1))
    calib = model.sample_inputs(64, torch.Generator().manual_seed(2))
    prune = tn.prune(model, calib, tn.PruneConfig(criterion="l2", ratio=ratio))
    pruned = prune.model
    tmp = Path(tempfile.mkdtemp(prefix=f"trimnet-{name}-"))
    orig_onnx = tn.export(model, tmp / "orig.onnx", x1).path
    orig_xml = tn.export(model, tmp / "orig.xml", x1).path
    (tmp / "pruned").mkdir()
    pruned_onnx = tn.export(pruned, tmp / "pruned" / "model.onnx", x1).path
    pruned_xml = tn.export(pruned, tmp / "pruned" / "model.xml", x1).path
    q_dir = tmp / "q"
    q_dir.mkdir()
    runners = {
        "original: torch eager": torch_runner(model),
        "original: onnxruntime fp32": ort_runner(orig_onnx),
        "original: openvino f32": ov_runner(orig_xml, "f32"),
        "original: openvino default (bf16 on this CPU)": ov_runner(orig_xml, None),
        "pruned: onnxruntime int8-dynamic": ort_runner(int8(pruned, q_dir, "int8-dynamic@onnxruntime", calib.numpy())),
        "pruned: openvino default (bf16 on this CPU)": ov_runner(pruned_xml, None),
    }
    if ov_int8:
        (q_dir / "ov").mkdir()
        runners["pruned: openvino int8"] = ov_runner(int8(pruned, q_dir / "ov", "int8@openvino", calib.numpy()[:32]),
                                                      None)
    load = os.getloadavg()
    med = timed_rounds(runners, {1: x1.numpy(), 32: x32.numpy()}, rounds)
    load_after = os.getloadavg()
    rows = []
    for n in runners:
        rows.append({"runner": n, "batch1_ms": med[f"{n}|1"] * 1e3, "batch32_samples_per_s": 32 / med[f"{n}|32"]})
    exported_orig = [r for r in rows if r["runner"].startswith("original") and "eager" not in r["runner"]]
    optimized = [r for r in rows if r["runner"].startswith("pruned")]
    best_o1 = min(exported_orig, key=lambda r: r["batch1_ms"])
    best_p1 = min(optimized, key=lambda r: r["batch1_ms"])
    best_o32 = max(exported_orig, key=lambda r: r["batch32_samples_per_s"])
    best_p32 = max(optimized, key=lambda r: r["batch32_samples_per_s"])
    last = prune.record.history[-1]
    return {
        "model": name, "seq_len": SEQ if model.inputs == "tokens" else None, "in_shape": list(model.in_shape),
        "prune_ratio": ratio, "heads": last["heads"], "ffn": last["neurons"],
        "macs": {"original": prune.record.macs[0], "pruned": prune.record.macs[1]},
        "params": {"original": prune.record.params[0], "pruned": prune.record.params[1]},
        "rows": rows,
        "best_exported_original": {"batch1": best_o1["runner"], "batch32": best_o32["runner"]},
        "best_optimized": {"batch1": best_p1["runner"], "batch32": best_p32["runner"]},
        "speedup_batch1": best_o1["batch1_ms"] / best_p1["batch1_ms"],
        "speedup_batch32": best_p32["batch32_samples_per_s"] / best_o32["batch32_samples_per_s"],
        "speedup_vs_eager_batch1": rows[0]["batch1_ms"] / best_p1["batch1_ms"],
        "load_average": {"before": load, "after": load_after}, "rounds": rounds,
        "seconds": time.perf_counter() - t_start,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="bert-base,distilbert,vit-small")
    ap.add_argument("--ratio", type=float, default=0.5, help="share of heads and FFN neurons removed")
    ap.add_argument("--rounds", type=int, default=5, help="batch-32 rounds (batch 1 runs four times as many)")
    ap.add_argument("--openvino-int8", action="store_true", help="also NNCF INT8 on OpenVINO (slow to calibrate)")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    results = []
    for name in args.models.split(","):
        r = run_model(name, args.ratio, args.rounds, args.openvino_int8)
        results.append(r)
        print(json.dumps({k: r[k] for k in ("model", "speedup_batch1", "speedup_batch32", "seconds")}), flush=True)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": THREADS, "cpu": platform.processor() or platform.machine(),
                                        "torch": torch.__version__, "accuracy": "not measured: random weights",
                                        "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
