"""Training throughput for 1 and 2 processes (torchrun, gloo) on this CPU; on a CUDA machine,
ResNet-18 at 224 in bf16 and its achieved FLOPS as a share of the device's peak.

    python benchmarks/scaling.py [--epochs 4] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

CONFIG = """
data: {source: digits}
model: {name: cnn}
train: {epochs: %(epochs)d, batch_size: 128, lr: 0.002, progress: false}
"""


def run_cpu(procs: int, threads: int, epochs: int, workdir: Path) -> float:
    cfg = workdir / "cfg.yaml"
    cfg.write_text(CONFIG % {"epochs": epochs})
    out = workdir / f"run-{procs}-{threads}-{time.time_ns()}"
    env = {**os.environ, "CI": "1", "OMP_NUM_THREADS": str(threads)}
    base = ["-m", "trimnet", "train", "-c", str(cfg), "--out", str(out)]
    if procs == 1:
        cmd = [sys.executable, *base]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={procs}", *base]
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    return json.loads((out / "metrics.json").read_text())["train_samples_per_s"]


def run_gpu(steps: int = 30, batch: int = 128) -> dict:
    """ResNet-18 training steps in bf16 autocast on one CUDA device."""
    import trimnet as tn
    from trimnet.profile import profile

    model = tn.create_model("resnet18", (3, 224, 224), 1000).cuda().to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x = torch.randn(batch, 3, 224, 224, device="cuda").to(memory_format=torch.channels_last)
    y = torch.randint(0, 1000, (batch,), device="cuda")
    step_flops = profile(model.cpu(), torch.randn(1, 3, 224, 224), training=True).train_flops_per_sample * batch
    model.cuda()
    compiled = torch.compile(model)
    for i in range(steps + 10):
        if i == 10:
            torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(compiled(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    return {"device": torch.cuda.get_device_name(), "batch": batch, "samples_per_s": batch / seconds,
            "achieved_tflops": step_flops / seconds / 1e12}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "scaling.json"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        configs = [(1, 1), (1, 2), (2, 1)]
        samples = {c: [] for c in configs}
        for _ in range(args.repeats):  # interleaved, so machine noise hits every configuration alike
            for procs, threads in configs:
                samples[(procs, threads)].append(run_cpu(procs, threads, args.epochs, Path(tmp)))
        base = statistics.median(samples[(1, 1)])
        for (procs, threads), values in samples.items():
            med = statistics.median(values)
            rows.append({"processes": procs, "threads_per_process": threads, "samples_per_s": med,
                         "vs_one_process_one_thread": med / base})
    gpu = run_gpu() if torch.cuda.is_available() else None
    result = {"benchmark": "scaling", "model": "digits cnn, batch 128", "epochs": args.epochs,
              "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
              "torch": torch.__version__, "cpu": rows, "gpu": gpu}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("| processes | threads each | samples/s | vs 1×1 |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['processes']} | {r['threads_per_process']} | {r['samples_per_s']:.0f} | "
              f"{r['vs_one_process_one_thread']:.2f}× |")
    print(f"\nGPU: {gpu if gpu else 'no CUDA device on this machine'}")


if __name__ == "__main__":
    main()
