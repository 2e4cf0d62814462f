"""Peak memory of training from an image folder: loaded into memory vs streamed from disk.

A folder of small PNGs (20,000 RGB 32x32 by default, two classes, generated here from a fixed
seed) is read two ways, each in its own fresh process so peak RSS (``ru_maxrss``) is its own:

- ``in-memory``: ``load_dataset("folder:DIR")``: every image decoded into one float32 tensor,
  split and normalized (what ``trimnet train`` does today);
- ``streamed``: ``load_dataset("folder:DIR", stream=True)``: the file list only; a
  ``torch.utils.data.DataLoader`` with worker processes decodes each batch.

Each process then runs ``tn.train`` on it (the digits-style CNN, ``--epochs`` epochs of batches
of 128, validation and the test score included), so the figure is training's, not just
loading's: the streamed run trains, validates and scores from disk batch by batch. Reported:
peak RSS of the main process and, for the streamed run, of its workers (each worker's own
peak), load and training seconds, samples/s, test accuracy.
The in-memory peak grows with the number of images; the streamed one with the batch.

    python benchmarks/data_memory.py                     # 20,000 images, ~2 minutes on 2 idle cores
    python benchmarks/data_memory.py --images 100000     # the 100k-image folder
    python benchmarks/data_memory.py --quick             # 3,000 images: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("CI", "1")

RESULTS = Path(__file__).parent / "results" / "data_memory.json"


def make_folder(root: Path, images: int, side: int, seed: int = 0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        c = i % 2
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 128, (side, side, 3), dtype=np.uint8) + np.uint8(100 * c)
        Image.fromarray(pixels).save(d / f"{i:06d}.png")
    return root


def child(mode: str, folder: str, workers: int, batch: int, epochs: int) -> dict:
    """One measured run (in its own process): ``tn.train`` itself, as ``trimnet train`` runs it."""
    import torch

    import trimnet as tn

    torch.manual_seed(0)
    t0 = time.perf_counter()
    if mode == "streamed":
        data = tn.load_dataset(f"folder:{folder}", stream=True, workers=workers)
        train_n = len(data.splits["train"])
    else:
        data = tn.load_dataset(f"folder:{folder}")
        train_n = len(data.y_train)
    load_s = time.perf_counter() - t0
    model = tn.create_model("cnn", data.in_shape, data.num_classes)
    result = tn.train(model, data, tn.TrainConfig(epochs=epochs, batch_size=batch, progress=False))
    m = result.metrics
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {"mode": mode, "train_samples": train_n, "load_s": load_s, "train_s": m["train_time_s"],
            "samples_per_s": m["train_samples_per_s"], "peak_rss_bytes": own,
            "worker_peak_rss_bytes": workers_peak if mode == "streamed" else None,
            "test_accuracy": m["test_accuracy"], "final_train_loss": result.history[-1]["train_loss"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--side", type=int, default=32)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], args.child[1], args.workers, args.batch, args.epochs)))
        return 0

    from trimnet.bench.env import describe_environment, load_average

    images = 3000 if args.quick else args.images
    load_before = load_average()
    with tempfile.TemporaryDirectory(prefix="trimnet-images-") as tmp:
        t0 = time.perf_counter()
        folder = make_folder(Path(tmp) / "images", images, args.side)
        make_s = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in folder.rglob("*.png"))
        runs = []
        for mode in ("in-memory", "streamed"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(folder), "--workers",
                                  str(args.workers), "--batch", str(args.batch), "--epochs", str(args.epochs)],
                                 capture_output=True, text=True, check=True)
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"{mode:>9}: peak RSS {runs[-1]['peak_rss_bytes'] / 2**20:,.0f} MiB, load {runs[-1]['load_s']:.1f} s, "
                  f"{args.epochs} epoch(s) {runs[-1]['train_s']:.1f} s, test accuracy {runs[-1]['test_accuracy']:.4f}",
                  flush=True)
    mem, stream = runs
    result = {
        "kind": "trimnet.benchmark.data_memory",
        "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python benchmarks/data_memory.py" + (" --quick" if args.quick else f" --images {images}"),
        "machine": describe_environment(),
        "load_average_before": load_before, "load_average_after": load_average(),
        "folder": {"images": images, "side": args.side, "channels": 3, "png_bytes": disk,
                   "decoded_float32_bytes": images * 3 * args.side * args.side * 4, "generate_s": make_s},
        "workers": args.workers, "batch": args.batch, "epochs": args.epochs,
        "runs": runs,
        "peak_rss_ratio_in_memory_over_streamed": mem["peak_rss_bytes"] / stream["peak_rss_bytes"],
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"in-memory / streamed peak RSS: {result['peak_rss_ratio_in_memory_over_streamed']:.2f}x; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
