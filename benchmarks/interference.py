"""Threads on a loaded machine, and whether trimnet notices the load.

For one model on onnxruntime and PyTorch eager: the p50 latency at 1 thread and at every core,
with and without CPU burners (one busy-loop process per core), the thread count
``auto_threads`` picks in each condition, and whether the figures came back flagged. Per
condition, the two thread counts are timed side by side in interleaved rounds
(``bench.rounds``), so the ratio is not skewed by load that drifts between them.

    python benchmarks/interference.py [--seconds 3] [--out benchmarks/results/interference.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import trimnet as tn
from trimnet.bench.env import describe_environment, load_average
from trimnet.bench.interference import Watch, auto_threads, usable_cores
from trimnet.bench.rounds import rounds
from trimnet.runtime import load_runner


def burners(n: int) -> list[subprocess.Popen]:
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    time.sleep(0.5)
    return procs


def condition(model, x, backend: str, seconds: float) -> dict:
    cores = usable_cores()
    picked = auto_threads()
    counts = sorted({1, cores})
    runners = [load_runner(backend, model, x, threads=t) for t in counts]
    try:
        with Watch() as watch:
            times = rounds(runners, x.numpy(), seconds=seconds)
    finally:
        for r in runners:
            r.close()
    p50 = {t: statistics.median(ts) for t, ts in zip(counts, times)}
    ratio = statistics.median(b / a for a, b in zip(times[0], times[-1])) if len(counts) > 1 else 1.0
    return {"backend": backend, "auto_threads": picked, "p50_ms": p50, "many_over_one": ratio,
            "others_cores": watch.others, "flagged_busy": watch.busy(cores), "load": load_average()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--out", default="benchmarks/results/interference.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = tn.create_model("cnn", (1, 8, 8), 10).eval()
    x = torch.randn(1, 1, 8, 8)
    rows = []
    for loaded in (False, True):
        procs = burners(usable_cores()) if loaded else []
        try:
            for backend in ("onnxruntime", "torch"):
                rows.append({"burners": len(procs), **condition(model, x, backend, args.seconds)})
                print(json.dumps(rows[-1]), flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    out = {"kind": "trimnet.benchmark.interference", "model": "digits cnn, batch 1", "rows": rows,
           "environment": describe_environment()}
    Path(args.out).write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
