"""``trimnet fuse``: fold BatchNorm, merge linear chains, drop dropout; write the fused run directory."""

from __future__ import annotations

import argparse
from pathlib import Path

from trimnet.cli.common import add_json_arg, format_table, print_json


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="fuse layers (BatchNorm folding, linear merging, no-op removal) into a new run",
                       description="Fuse a trained model's layers into fewer computation steps. The input run is "
                                   "never changed; each pass is checked to keep the outputs within 1e-5 of scale.")
    p.add_argument("run_dir", help="run directory (from trimnet train)")
    p.add_argument("--out", help="run directory to write (default RUN_DIR-fused)")
    p.add_argument("--passes", help="comma-separated passes, in order (default drop_identity,bn_fold,linear_merge)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--no-eval", action="store_true", help="skip the test accuracy before and after")
    p.add_argument("--runtime-report", action="store_true",
                   help="also count the operators onnxruntime and openvino run, before and after our passes")
    p.add_argument("--bench", action="store_true", help="also time eager PyTorch before and after (interleaved)")
    p.add_argument("--batch-sizes", default="1,64", help="batch sizes for --bench (default 1,64)")
    add_json_arg(p)
    p.set_defaults(func=run)


def prepare_out(run_dir: Path, out: str | None, suffix: str, overwrite: bool) -> Path:
    """The output run directory: never the input, never an existing run unless ``overwrite``."""
    from trimnet.errors import ConfigError

    path = Path(out) if out else run_dir.parent / f"{run_dir.name}-{suffix}"
    if path.resolve() == run_dir.resolve():
        raise ConfigError(f"--out {path} is the input run; the input is never changed, choose another --out")
    if (path / "model.json").exists() and not overwrite:
        raise ConfigError(f"{path} already holds a run; pass --overwrite to replace it, or choose another --out")
    return path


def parse_batches(text: str) -> list[int]:
    from trimnet.errors import ConfigError

    try:
        sizes = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"--batch-sizes {text!r} is not a comma-separated list of integers like 1,64") from None
    if not sizes or any(b < 1 for b in sizes):
        raise ConfigError(f"--batch-sizes {text!r} must be positive integers like 1,64")
    return sizes


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.artifact import write_json
    from trimnet.optimize.fuse import fuse

    from trimnet.cli.common import check_out, new_run_dir

    art = tn.load_artifact(args.run_dir)
    out = check_out(prepare_out(art.path, args.out, "fused", args.overwrite))
    with new_run_dir(out):
        return _fuse(args, art, out)


def _fuse(args: argparse.Namespace, art, out: Path) -> int:
    import trimnet as tn
    from trimnet.artifact import write_json
    from trimnet.optimize.fuse import fuse

    passes = [p.strip() for p in args.passes.split(",") if p.strip()] if args.passes else None
    data = None
    if not args.no_eval and art.meta.get("data"):
        from trimnet.train.evaluate import dataset_of

        data = dataset_of(art)
    result = fuse(art, passes, inputs=data.x_test[:64] if data is not None else None)
    report: dict = {"run": str(art.path), "out": str(out), **result.record.to_dict()}
    if data is not None:
        before = tn.evaluate(art.model, data).accuracy
        after = tn.evaluate(result.model, data).accuracy
        report["accuracy"] = {"before": before, "after": after, "split": "test"}
    if args.runtime_report:
        from trimnet.optimize.fuse.runtime_report import compare_runtime_fusion

        report["runtime_fusion"] = compare_runtime_fusion(art.model, result.model, art.example_inputs(2))
    if args.bench:
        report["bench"] = _bench(art, result.model, parse_batches(args.batch_sizes))
    metrics = {"test_accuracy": report["accuracy"]["after"]} if "accuracy" in report else None
    extra = {k: art.meta[k] for k in ("data", "kind") if k in art.meta}
    extra["fused_from"] = str(art.path)
    extra["fuse"] = {"passes": [p.name for p in result.record.passes], "summary": result.record.summary()}
    tn.save_artifact(result.model, out, in_shape=art.in_shape, class_names=art.class_names,
                     normalization=art.normalization, metrics=metrics, extra=extra)
    write_json(out / "fuse.json", report)
    if args.json:
        print_json(report)
        return 0
    _print(report)
    return 0


def _bench(art, fused, batch_sizes: list[int]) -> list[dict]:
    from trimnet.bench import BenchConfig, compare

    cfg = BenchConfig(min_time_s=0.3, max_time_s=3.0, warmup_max_s=0.5)
    res = compare(art.model, fused, art.example_inputs(max(batch_sizes)), backend_a="torch",
                  batch_sizes=batch_sizes, config=cfg)
    return [{"batch": r.batch, "before_ms": r.a_latency_ms["p50"], "after_ms": r.b_latency_ms["p50"],
             "speedup": 1.0 / r.ratio if r.ratio > 0 else None} for r in res.results]


def _print(report: dict) -> None:
    print(f"{report['run']} -> {report['out']}: {report['summary']} ({report['mode']})\n")
    rows = [[p["name"], len(p["changes"]), len(p["skipped"]), sum(p["layers_before"].values()),
             sum(p["layers_after"].values()), f"{p['check']['rel']:.1e}"] for p in report["passes"]]
    print(format_table(["pass", "changed", "left alone", "layers before", "layers after", "max rel. diff"], rows))
    for p in report["passes"]:
        for c in p["changes"]:
            print(f"  {p['name']}: {' + '.join(c['layers'])}: {c['what']}")
        for s in p["skipped"]:
            print(f"  {p['name']}: {s['layer']} {s['reason']}")
    if "accuracy" in report:
        acc = report["accuracy"]
        print(f"\ntest accuracy {acc['before']:.4f} -> {acc['after']:.4f}")
    if "runtime_fusion" in report:
        nodes = report["runtime_fusion"]["nodes"]
        print("\nnodes the runtimes run (before -> after our passes)")
        print(format_table(["graph", "before", "after"], [[k, v["before"], v["after"]] for k, v in nodes.items()]))
    if "bench" in report:
        print("\neager PyTorch, median ms (interleaved)")
        print(format_table(["batch", "before", "after", "speedup"],
                           [[b["batch"], b["before_ms"], b["after_ms"], b["speedup"]] for b in report["bench"]]))
