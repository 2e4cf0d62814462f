"""``trimnet profile``: MACs, FLOPs, parameters, memory and arithmetic intensity per layer.

    trimnet profile --model resnet50 --input-shape 1x3x224x224
    trimnet profile runs/digits-cnn --json
    trimnet profile --model mobilenetv2 --input-shape 8x3x224x224 --training --samples 60000 --epochs 10
"""

from __future__ import annotations

import argparse
import sys

from trimnet.cli import common
from trimnet.errors import ConfigError


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help="count MACs, FLOPs, parameters and memory per layer",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", nargs="?", help="a run directory (model.json + weights) to profile")
    parser.add_argument("--model", help="a registered model name (see trimnet.list_models()) or path/file.py:function")
    parser.add_argument("--input-shape", help="input shape with the batch first, like 1x3x224x224")
    parser.add_argument("--num-classes", type=int, default=1000, help="classes for --model (default 1000)")
    parser.add_argument("--batch", type=int, default=1, help="batch size for a run directory (default 1)")
    parser.add_argument("--training", action="store_true", help="count the backward pass too")
    parser.add_argument("--samples", type=int, help="training-set size: report the FLOPs to train (implies --training)")
    parser.add_argument("--epochs", type=int, default=1, help="epochs for --samples (default 1)")
    tensors = parser.add_mutually_exclusive_group()
    tensors.add_argument("--fake", dest="fake", action="store_const", const=True,
                         help="always use fake tensors: no arithmetic, no activation memory")
    tensors.add_argument("--real", dest="fake", action="store_const", const=False,
                         help="run real arithmetic (same counts; the default picks fake unless the model is tiny)")
    parser.add_argument("--depth", type=int, help="print totals per module down to this depth instead of per layer")
    common.add_json_arg(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from trimnet.profile import profile

    if getattr(args, "overrides", None):
        keys = ", ".join(k for k, _ in args.overrides)
        raise ConfigError(f"trimnet profile takes no config overrides (got {keys}); see trimnet profile --help")
    if args.samples is not None and (args.samples < 1 or args.epochs < 1):
        raise ConfigError(f"--samples and --epochs must be >= 1; got {args.samples} and {args.epochs}")
    model, shape = _model_and_shape(args)
    training = args.training or args.samples is not None
    prof = profile(model, input_shape=shape, training=training, fake=args.fake)
    compute = None
    if args.samples is not None:
        compute = {"samples": args.samples, "epochs": args.epochs,
                   "flops": prof.training_flops(args.samples, args.epochs)}
    if args.json:
        out = prof.to_dict()
        if compute is not None:
            out["training_compute"] = compute
        if args.depth is not None:
            out["modules"] = prof.by_module(args.depth)
        common.print_json(out)
        return 0
    _print_report(prof, args.depth)
    if compute is not None:
        from trimnet.profile.report import human

        print(f"training    {compute['flops']:,} FLOPs ({human(compute['flops'])}) for {args.samples:,} samples "
              f"x {args.epochs} epochs")
    return 0


def _model_and_shape(args: argparse.Namespace):
    if args.run_dir and args.model:
        raise ConfigError("pass a run directory or --model, not both")
    shape = common.parse_shape(args.input_shape) if args.input_shape else None
    if args.run_dir:
        from trimnet.artifact import load_artifact

        artifact = load_artifact(args.run_dir)
        if args.batch < 1:
            raise ConfigError(f"--batch must be >= 1; got {args.batch}")
        return artifact.model, shape or (args.batch, *artifact.in_shape)
    if args.model:
        if shape is None:
            raise ConfigError("--model needs --input-shape with the batch first, like --input-shape 1x3x224x224")
        if len(shape) < 2:
            raise ConfigError(f"--input-shape {args.input_shape} needs a batch dimension first, like 1x{args.input_shape}")
        from trimnet.models import create_model

        return create_model(args.model, in_shape=shape[1:], num_classes=args.num_classes), shape
    raise ConfigError("pass a run directory or --model NAME --input-shape 1x3x224x224")


def _print_report(prof, depth: int | None) -> None:
    from trimnet.profile import report

    if depth is not None:
        header = ("module", "MACs", "FLOPs") + (("backward FLOPs",) if prof.training else ())
        rows = []
        for name, agg in prof.by_module(depth).items():
            row = (name or "(model)", report.human(agg["macs"]), report.human(agg["flops"]))
            rows.append(row + ((report.human(agg["backward_flops"]),) if prof.training else ()))
    else:
        header, rows = report.COLUMNS, report.layer_rows(prof)
    if sys.stdout.isatty():
        from rich.console import Console
        from rich.table import Table

        table = Table(box=None, header_style="bold")
        for i, name in enumerate(header):
            numeric = i >= (3 if depth is None else 1)
            table.add_column(name, justify="right" if numeric else "left", no_wrap=True)
        for r in rows:
            table.add_row(*r)
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
        console = Console()
        console.width = max(console.width, sum(widths) + 2 * len(widths))  # never squeeze a number
        console.print(table)
        for line in report.summary_lines(prof):
            console.print(line, highlight=False, markup=False)
        return
    print(report.render(header, rows))
    print()
    print("\n".join(report.summary_lines(prof)))
