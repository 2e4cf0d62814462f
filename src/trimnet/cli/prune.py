"""``trimnet prune``: remove rarely active channels, neurons and heads, fine-tune, write a new run."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from trimnet.cli.common import add_config_args, add_json_arg, format_table, print_json
from trimnet.files import usual_mode

# flag -> PruneConfig key
_FLAGS = {"criterion": "criterion", "ratio": "ratio", "target_macs": "target_macs", "scope": "scope",
          "round_to": "round_to", "min_channels": "min_channels", "steps": "steps",
          "samples": "calibration_samples"}


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="prune channels, neurons and attention heads; fine-tune; write a new run",
                       description="Remove whole channels, neurons and attention heads that matter least (by "
                                   "default those most rarely active, APoZ), then fine-tune with distillation from "
                                   "the unpruned model. The input run is never changed. Config keys are dotted "
                                   "flags too: --finetune.epochs 5 --finetune.lr 1e-3.")
    p.add_argument("run_dir", nargs="?", help="run directory (from trimnet train)")
    add_config_args(p, _default_config)
    add_json_arg(p)
    p.add_argument("--criterion", help="apoz (default), mean_activation, l1, l2, bn_scale or taylor")
    amount = p.add_mutually_exclusive_group()
    amount.add_argument("--ratio", type=float, help="share of channels to remove, in (0, 1) (default 0.5)")
    amount.add_argument("--target-macs", type=float, help="share of the MACs to keep, in (0, 1)")
    p.add_argument("--scope", choices=["per_layer", "global"],
                   help="rank channels per layer (default) or across layers")
    p.add_argument("--round-to", type=int, help="keep widths multiples of this (default 8)")
    p.add_argument("--min-channels", type=int, help="never keep fewer channels in a layer (default 1)")
    p.add_argument("--ignore", action="append", metavar="MODULE",
                   help="module whose shape must not change (repeat, or comma-separate)")
    p.add_argument("--steps", type=int, help="iterative pruning: prune a share and fine-tune, this many times")
    p.add_argument("--samples", type=int, help="calibration samples from the training split (default 512)")
    p.add_argument("--out", help="run directory to write (default RUN_DIR-pruned)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--list-criteria", action="store_true", help="list the pruning criteria and exit")
    p.set_defaults(func=run)


def _default_config():
    from trimnet.optimize.prune import PruneConfig

    return PruneConfig()


def resolve_config(args: argparse.Namespace):
    from trimnet.config import apply_overrides, from_dict, load_yaml, to_dict
    from trimnet.optimize.prune import PruneConfig

    data = to_dict(PruneConfig())
    if args.config:
        data = apply_overrides(data, list(_flatten(load_yaml(args.config))))
    for flag, key in _FLAGS.items():
        value = getattr(args, flag, None)
        if value is not None:
            data[key] = value
    if args.ignore:
        data["ignore"] = [n.strip() for arg in args.ignore for n in arg.split(",") if n.strip()]
    data = apply_overrides(data, args.overrides)
    cfg = from_dict(PruneConfig, data)
    cfg.validate()
    return cfg


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def output_dir(run_dir: Path, out: str | None, overwrite: bool) -> Path:
    from trimnet.errors import ConfigError

    path = Path(out) if out else run_dir.parent / f"{run_dir.name}-pruned"
    if path.resolve() == run_dir.resolve():
        raise ConfigError(f"--out {path} is the input run; the input is never changed, choose another --out")
    if path.exists() and path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{path} already exists; pass --overwrite to replace it, or choose another --out")
    from trimnet.cli.common import check_out

    return check_out(path)


def write_run(out: Path, write) -> None:
    """Build the run in a temporary directory beside ``out`` and move it into place at the end,
    so a failure never leaves a half-written run."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for stale in out.parent.glob(f".{out.name}.*"):  # what a killed run left (one writer per --out)
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    os.chmod(tmp, usual_mode(0o777))  # mkdtemp makes it private; a run directory is not
    old = None
    try:
        write(tmp)
        if out.exists():
            old = out.parent / f"{tmp.name}.old"
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException:
        if old is not None and not out.exists():
            os.replace(old, out)
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    import yaml

    from trimnet.config import dump_yaml, to_dict

    if args.list_criteria:
        from trimnet.optimize.importance import list_criteria

        print("\n".join(list_criteria()))
        return 0
    cfg = resolve_config(args)
    if args.print_config:
        print(yaml.safe_dump(to_dict(cfg), sort_keys=False), end="")
        return 0

    import trimnet as tn
    from trimnet.artifact import write_json
    from trimnet.errors import ConfigError, DataError

    if not args.run_dir:
        raise ConfigError("pass the run directory to prune, e.g. trimnet prune runs/digits-cnn --ratio 0.5")
    from trimnet.optimize.prune import prune
    from trimnet.train.evaluate import dataset_of

    art = tn.load_artifact(args.run_dir, rebuild=True)
    out = output_dir(art.path, args.out, args.overwrite)
    if not art.meta.get("data"):
        raise DataError(f"{art.path} records no dataset to calibrate and fine-tune on; prune it from Python "
                        "with trimnet.optimize.prune.prune(model, data, config)")
    data = dataset_of(art)
    result = prune(art.model, data, cfg)
    record = result.record
    report = {"run": str(art.path), "out": str(out), **record.to_dict()}
    metrics = {"test_accuracy": record.accuracy.get("after"), "macs": record.macs[1], "params": record.params[1]}
    extra = {k: art.meta[k] for k in ("data", "kind") if k in art.meta}
    extra.update(name=out.name, pruned_from=str(art.path), prune={"summary": record.summary(),
                                                                   "config": to_dict(cfg)})

    def write(tmp: Path) -> None:
        tn.save_artifact(result.model, tmp, in_shape=art.in_shape, class_names=art.class_names,
                         normalization=art.normalization, metrics=metrics, extra=extra)
        write_json(tmp / "prune.json", report)
        dump_yaml(cfg, tmp / "config.yaml")

    write_run(out, write)
    if args.json:
        print_json(report)
    else:
        print(format_report(report))
    return 0


def format_report(report: dict) -> str:
    lines = [f"{report['run']} -> {report['out']}", report["summary"], ""]
    rows = [[g["name"], g["unit"], g["channels"][0], g["channels"][1], g["criterion"], len(g["layers"])]
            for g in report["groups"]]
    if rows:
        lines.append(format_table(["group", "unit", "before", "after", "ranked by", "layers"], rows))
    for s in report["skipped"]:
        lines.append(f"  left alone: {s['group']}: {s['reason']}")
    for note in report["notes"]:
        lines.append(f"  note: {note}")
    acc = report["accuracy"]
    if acc:
        lines.append("")
        lines.append("test accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
    return "\n".join(lines)
