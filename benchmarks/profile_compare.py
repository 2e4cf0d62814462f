"""trimnet's profiler next to fvcore, ptflops and torch.utils.flop_counter on the zoo.

For every zoo model: MACs (and FLOPs where a tool has them) from each tool, the published
MACs where one exists (REFERENCE.md), and the wall time each tool takes (median and
min of ``--repeat`` runs after one warm-up run per model, interleaved across tools; the
first call in the process is reported apart, since it pays one-time imports). Peers that are not installed are skipped.

    .venv/bin/python benchmarks/profile_compare.py            # writes benchmarks/results/profile_compare.json
    .venv/bin/python benchmarks/profile_compare.py --models resnet18 vgg16 --repeat 5

How each peer is called (its usual usage): fvcore ``FlopCountAnalysis(model, x).total()``
(1 per multiply-add, traces with real tensors); ptflops ``get_model_complexity_info`` with
its default ``pytorch`` backend (module hooks); ``torch.utils.flop_counter.FlopCounterMode``
around a real forward pass (2 per multiply-add, so MACs = FLOPs / 2).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

import trimnet as tn
from trimnet.profile import profile

# model -> (input shape without batch, classes, published MACs or None)
ZOO = {
    "resnet18": ((3, 224, 224), 1000, 1_814_073_344),
    "resnet34": ((3, 224, 224), 1000, 3_663_761_408),
    "resnet50": ((3, 224, 224), 1000, 4_089_184_256),
    "vgg16": ((3, 224, 224), 1000, 15_470_264_320),
    "vgg16_bn": ((3, 224, 224), 1000, 15_470_264_320),
    "mobilenetv2": ((3, 224, 224), 1000, 300_774_272),
    # encoder 12 x (128*12*768^2 + 2*128^2*768) plus the 768 x 1000 head
    "bert_base_encoder": ((128, 768), 1000, 11_173_625_856 + 768 * 1000),
    "resnet20": ((3, 32, 32), 10, None),
    "resnet56": ((3, 32, 32), 10, None),
    "lenet5": ((1, 32, 32), 10, None),
    "cnn": ((1, 8, 8), 10, None),
    "mlp": ((64,), 10, None),
    "transformer": ((3, 32, 32), 10, None),
}

Counter = Callable[[torch.nn.Module, torch.Tensor], dict]


def ours(model: torch.nn.Module, x: torch.Tensor) -> dict:
    prof = profile(model, x)  # default: fake tensors, real ones for tiny workloads
    return {"macs": prof.macs, "flops": prof.flops, "tensors": prof.tensors, "uncounted": prof.uncounted}


def ours_fake(model: torch.nn.Module, x: torch.Tensor) -> dict:
    prof = profile(model, x, fake=True)
    return {"macs": prof.macs, "flops": prof.flops, "tensors": prof.tensors, "uncounted": prof.uncounted}


def fvcore(model: torch.nn.Module, x: torch.Tensor) -> dict:
    from fvcore.nn import FlopCountAnalysis

    analysis = FlopCountAnalysis(model, x)
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    total = analysis.total()
    return {"macs": int(total), "by_operator": dict(analysis.by_operator()),
            "unsupported": dict(analysis.unsupported_ops())}


def ptflops(model: torch.nn.Module, x: torch.Tensor) -> dict:
    from ptflops import get_model_complexity_info

    macs, _ = get_model_complexity_info(model, tuple(x.shape[1:]), as_strings=False, print_per_layer_stat=False,
                                        verbose=False)
    return {"macs": int(macs)}


def flop_counter(model: torch.nn.Module, x: torch.Tensor) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    flops = counter.get_total_flops()
    return {"macs": flops // 2, "flops": int(flops),
            "by_operator": {str(k): v for k, v in counter.get_flop_counts().get("Global", {}).items()}}


PEERS: dict[str, tuple[str | None, Counter]] = {
    "trimnet": (None, ours),
    "trimnet fake=True": (None, ours_fake),
    "fvcore": ("fvcore", fvcore),
    "ptflops": ("ptflops", ptflops),
    "torch.utils.flop_counter": (None, flop_counter),
}


def _timed(fn: Counter, model, x) -> tuple[dict, float]:
    t = time.perf_counter()
    out = fn(model, x)
    return out, time.perf_counter() - t


def run(models: list[str], repeat: int) -> dict:
    tools = {name: fn for name, (module, fn) in PEERS.items()
             if module is None or importlib.util.find_spec(module) is not None}
    skipped = sorted(set(PEERS) - set(tools))
    results: dict = {"tools": list(tools), "skipped": skipped, "repeat": repeat, "first_call_s": {}, "models": {}}
    for name in models:
        in_shape, classes, published = ZOO[name]
        torch.manual_seed(0)
        model = tn.create_model(name, in_shape, classes).eval()
        x = torch.randn(1, *in_shape)
        row: dict = {"input": [1, *in_shape], "classes": classes, "published_macs": published,
                     "params": sum(p.numel() for p in model.parameters())}
        times: dict[str, list[float]] = {tool: [] for tool in tools}
        for tool, fn in tools.items():
            out, first = _timed(fn, model, x)  # warm-up (per-model tracing, caches)
            results["first_call_s"].setdefault(tool, round(first, 4))
            if published is not None:
                out["matches_published"] = out["macs"] == published
            row[tool] = out
        for _ in range(repeat):  # interleaved, so that load from other processes hits every tool alike
            for tool, fn in tools.items():
                times[tool].append(_timed(fn, model, x)[1])
        for tool in tools:
            row[tool]["seconds"] = round(statistics.median(times[tool]), 4)
            row[tool]["seconds_min"] = round(min(times[tool]), 4)
        results["models"][name] = row
        print(f"{name}: " + ", ".join(f"{t} {row[t]['macs']:,} ({row[t]['seconds']:.3f}s)" for t in tools),
              flush=True)
    return results


def markdown(results: dict) -> str:
    tools = results["tools"]
    macs_tools = [t for t in tools if t != "trimnet fake=True"]  # same counts as trimnet
    head = ["model", "published MACs", *[f"{t} MACs" for t in macs_tools], "trimnet FLOPs",
            *[f"{t} time" for t in tools]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in results["models"].items():
        pub = row["published_macs"]
        cells = [name, f"{pub:,}" if pub else "–"]
        for t in macs_tools:
            macs = row[t]["macs"]
            mark = "" if pub is None else (" ✓" if macs == pub else " ✗")
            cells.append(f"{macs:,}{mark}")
        cells.append(f"{row['trimnet']['flops']:,}")
        if "trimnet fake=True" in row and row["trimnet fake=True"]["macs"] != row["trimnet"]["macs"]:
            raise RuntimeError(f"{name}: fake and real tensors disagree")
        cells += [f"{row[t]['seconds']:.3f} ({row[t]['seconds_min']:.3f})" for t in tools]
        lines.append("| " + " | ".join(cells) + " |")
    first = ", ".join(f"{t} {s:.2f} s" for t, s in results["first_call_s"].items())
    lines.append("")
    lines.append(f"Times in seconds: median (min) of {results['repeat']} warm runs, interleaved across tools; batch 1, "
                 f"CPU, {results['threads']} threads. First call in the process (one-time imports): {first}.")
    if results["skipped"]:
        lines.append(f"Skipped (not installed): {', '.join(results['skipped'])}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=list(ZOO), choices=list(ZOO))
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "profile_compare.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    results = run(args.models, args.repeat)
    results["threads"] = args.threads
    results["versions"] = {"torch": torch.__version__, "python": platform.python_version(),
                           **{m: _version(m) for m in ("fvcore", "ptflops")}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print()
    print(markdown(results))


def _version(module: str) -> str | None:
    try:
        from importlib.metadata import version

        return version(module)
    except Exception:  # not installed
        return None


if __name__ == "__main__":
    main()
