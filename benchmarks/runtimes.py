"""Runtimes side by side (REFERENCE.md's runtimes table) through ``tn.benchmark``, and the harness's overhead.

Cases: the digits CNN (batch 1 and 256) and ResNet-18 at 224x224 (batch 1 and 32) on torch
eager, torch.compile (the CNN only: compiling ResNet-18 takes minutes on two cores, and
REFERENCE.md has no figure for it either), onnxruntime, and OpenVINO with its default
precision (bf16 on CPUs with bf16 instructions) and with f32 forced; 2 threads.

Overhead: the harness's call (``runner.call``) against a bare loop calling the runtime's own
API (``session.run`` / ``infer_request.infer`` / ``model(x)``) on prepared inputs, timed in
alternating pairs; see ``overhead``.

    python benchmarks/runtimes.py [--quick]      # writes benchmarks/results/runtimes.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import trimnet as tn
from trimnet.bench import BenchConfig, benchmark
from trimnet.bench.report import markdown_table, ms
from trimnet.bench.timing import Stats, measure

THREADS = 2
OUT = Path(__file__).parent / "results" / "runtimes.json"
BACKENDS = ["torch", "torch-compile", "onnxruntime", "openvino:precision=default", "openvino:precision=f32"]
COLUMNS = ["torch eager", "torch.compile", "onnxruntime", "openvino (default)", "openvino f32"]
# REFERENCE.md, 2 threads, AVX-512 + BF16 Zen 4 (median ms; None: not measured there)
REFERENCE = {
    ("resnet18", 1): [31.1, None, 20.5, 9.9, 18.1],
    ("resnet18", 32): [1071, None, 600, 268, 550],
    ("cnn", 1): [0.54, 0.39, 0.050, 0.127, None],
    ("cnn", 256): [20.9, 8.9, 8.0, 4.2, None],
}


def cases(quick: bool) -> list[dict]:
    scale = 0.3 if quick else 1.0
    return [
        {"name": "cnn", "label": "digits CNN", "in_shape": (1, 8, 8), "classes": 10, "batches": [1, 256],
         "backends": BACKENDS,
         "config": BenchConfig(threads=THREADS, min_iters=20, min_time_s=1.5 * scale, max_time_s=6 * scale,
                               warmup_max_s=3 * scale)},
        {"name": "resnet18", "label": "ResNet-18 224", "in_shape": (3, 224, 224), "classes": 1000, "batches": [1, 32],
         "backends": [b for b in BACKENDS if b != "torch-compile"],
         "config": BenchConfig(threads=THREADS, min_iters=5, min_time_s=2 * scale, max_time_s=8 * scale,
                               warmup_window=3, warmup_max_s=3 * scale)},
    ]


def run_case(case: dict) -> dict:
    torch.manual_seed(0)
    model = tn.create_model(case["name"], case["in_shape"], case["classes"]).eval()
    example = torch.randn(1, *case["in_shape"])
    start = time.perf_counter()
    result = benchmark(model, example, backends=case["backends"], batch_sizes=case["batches"], config=case["config"])
    print(f"{case['label']}: {time.perf_counter() - start:.0f} s", flush=True)
    return result.to_dict()


# ------------------------------------------------------------------ overhead against a bare loop


def bare_calls(backend: str, model: torch.nn.Module, x: np.ndarray):
    """The runtime's own call on prepared inputs, with nothing of trimnet around it."""
    from trimnet.runtime.export import export_onnx_file

    if backend == "torch":
        t = torch.from_numpy(x)

        def call():
            with torch.inference_mode():
                model(t)
        return call
    with tempfile.TemporaryDirectory(prefix="trimnet-overhead-") as tmp:
        path = export_onnx_file(model, Path(tmp) / "model.onnx", torch.from_numpy(x))
        if backend == "onnxruntime":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads, opts.inter_op_num_threads = THREADS, 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            feed, outs = {sess.get_inputs()[0].name: x}, [sess.get_outputs()[0].name]
            return lambda: sess.run(outs, feed)
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(path)), "CPU",
                                      {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": THREADS,
                                       "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    return lambda: request.infer(x, share_inputs=True)


def paired(backend: str, model: torch.nn.Module, x: np.ndarray, seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-call times (ns) of the bare call and of the harness's call, taken in alternating pairs."""
    from trimnet.bench.env import pinned_threads
    from trimnet.bench.timing import measure_pairs
    from trimnet.runtime import load_runner

    bare = bare_calls(backend, model, x)
    with pinned_threads(THREADS), load_runner(backend, model, torch.from_numpy(x), threads=THREADS) as runner:
        call, prepared = runner.call, runner.prepare(x)  # what the harness times
        for _ in range(50):  # warm both
            bare()
            call(prepared)
        cfg = BenchConfig(min_iters=1_000_000, max_iters=1_000_000, min_time_s=0.0, max_time_s=seconds)
        t_bare, t_harness = measure_pairs(bare, lambda: call(prepared), cfg)
    return np.asarray(t_bare, dtype=np.float64), np.asarray(t_harness, dtype=np.float64)


def overhead(backend: str, seconds: float, loop_ns: float) -> dict:
    """What the harness adds to the latency it reports, relative to the fastest case (digits CNN, batch 1).

    The harness's call and the runtime's own call are timed in alternating pairs, so load hits
    both alike. What the harness adds (a lambda and a method call; the torch runner's thread
    check) does not depend on the model, so it is measured precisely on a one-layer model,
    as the median of per-pair differences, and divided by the CNN's bare latency; the
    direct comparison on the CNN is reported beside it (its noise is larger than the effect
    on a busy machine). The timing loop's own cost (two clock reads) is added on top.
    """
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(torch.nn.Linear(4, 4)).eval()
    t_bare, t_harness = paired(backend, tiny, np.zeros((1, 4), np.float32), seconds / 3)
    fixed_ns = float(np.median(t_harness - t_bare))
    cnn = tn.create_model("cnn", (1, 8, 8), 10).eval()
    x = np.random.default_rng(0).standard_normal((1, 1, 8, 8), dtype=np.float32)
    bare, harness = paired(backend, cnn, x, seconds)
    bare_p50 = float(np.median(bare))
    return {"backend": backend, "case": "digits CNN, batch 1", "pairs": len(bare), "tiny_pairs": len(t_bare),
            "fixed_cost_ns": fixed_ns, "bare_p50_us": bare_p50 / 1e3, "harness_p50_us": float(np.median(harness)) / 1e3,
            "direct_median_of_pairs": float(np.median(harness / bare)) - 1,
            "direct_p10": float(np.percentile(harness, 10) / np.percentile(bare, 10)) - 1,
            "timing_loop": loop_ns / bare_p50, "overhead": (fixed_ns + loop_ns) / bare_p50}


def empty_call_ns() -> float:
    """What the timing loop itself adds around one call: timing a call that does nothing."""
    return Stats.of(measure(lambda: None, BenchConfig(min_iters=20000, max_iters=20000, min_time_s=0))).p50 * 1e6


# ------------------------------------------------------------------ tables


def latency_table(results: list[dict]) -> str:
    headers = ["model", *COLUMNS]
    rows = []
    for res, case in results:
        for batch in case["batches"]:
            row = [f"{case['label']}, batch {batch}"]
            for backend in BACKENDS:
                m = next((r for r in res["results"] if r["backend"] == backend and r["batch"] == batch), None)
                if m is None or m["status"] != "ok":
                    row.append("–")
                else:
                    prec = m["precision"] if backend.startswith("openvino:precision=default") else ""
                    row.append(ms(m["latency_ms"]["p50"]) + (f" ({prec})" if prec else ""))
            rows.append(row)
    return markdown_table(headers, rows)


def ordering(results: list[dict]) -> list[dict]:
    """Per row: the backends from fastest to slowest, here and in REFERENCE.md (where both have figures).

    REFERENCE.md's "openvino (default)" ran bf16; where OpenVINO's default ran another
    precision here (a CPU without bf16 instructions), that column is left out.
    """
    out = []
    for res, case in results:
        for batch in case["batches"]:
            ours = {}
            for col, backend in zip(COLUMNS, BACKENDS):
                m = next((r for r in res["results"] if r["backend"] == backend and r["batch"] == batch), None)
                comparable = backend != "openvino:precision=default" or (m or {}).get("precision") == "bf16"
                if m is not None and m["status"] == "ok" and comparable:
                    ours[col] = m["latency_ms"]["p50"]
            ref = {c: v for c, v in zip(COLUMNS, REFERENCE[(case["name"], batch)]) if v is not None}
            common = [c for c in COLUMNS if c in ours and c in ref]
            here = sorted(common, key=ours.get)
            there = sorted(common, key=ref.get)
            out.append({"case": f"{case['label']}, batch {batch}", "here": here, "reference": there,
                        "same": here == there})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements (a smoke run)")
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    start = time.perf_counter()
    results = [(run_case(case), case) for case in cases(args.quick)]
    loop_ns = empty_call_ns()
    over = [overhead(b, 3 if args.quick else 6, loop_ns) for b in ("onnxruntime", "openvino", "torch")]
    order = ordering(results)
    report = {
        "benchmark": "runtimes", "threads": THREADS, "seconds": round(time.perf_counter() - start, 1),
        "cases": [{"label": c["label"], **r} for r, c in results],
        "overhead": over, "empty_call_ns": loop_ns, "ordering": order,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2, default=float) + "\n")

    env = results[0][0]["environment"]
    print(f"\n{env['cpu']['name']} ({', '.join(env['cpu']['flags'])}), {THREADS} threads, "
          f"load average {env['load_average']} -> {env['load_average_after']}; median ms (p50)\n")
    print(latency_table(results))
    print("\nordering fastest -> slowest, here vs REFERENCE.md:")
    for row in order:
        same = "(same)" if row["same"] else "| REFERENCE: " + " < ".join(row["reference"])
        print(f"- {row['case']}: {' < '.join(row['here'])} {same}")
    print("\n" + markdown_table(
        ["backend", "harness's fixed cost per call", "digits CNN b1, bare p50", "overhead there (fixed + timing loop)",
         "direct check on the CNN: median of pairs", "p10 vs p10"],
        [[o["backend"], f"{o['fixed_cost_ns']:.0f} ns", f"{o['bare_p50_us']:.1f} µs", f"{o['overhead']:+.2%}",
          f"{o['direct_median_of_pairs']:+.1%}", f"{o['direct_p10']:+.1%}"] for o in over]))
    print(f"\nempty call through the timing loop: {loop_ns:.0f} ns; total {report['seconds']:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
