"""``trimnet export``: write a run directory's model as ONNX or OpenVINO IR, checked against PyTorch.

The formats and their precisions are those registered with the backends (``trimnet.runtime``).

    trimnet export runs/digits-cnn --format onnx              # runs/digits-cnn/model.onnx
    trimnet export runs/digits-cnn --format openvino --data digits --out deploy/
"""

from __future__ import annotations

import argparse

from trimnet.cli import common
from trimnet.errors import ConfigError


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help="export a model to ONNX or OpenVINO IR with a parity check",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="the run directory whose model to export")
    parser.add_argument("--format", choices=common.LazyChoices(_formats), default=None,
                        help="onnx (model.onnx) or openvino (model.xml + model.bin), or another registered "
                             "format; default: from --out, else onnx")
    parser.add_argument("--out", help="file (.onnx / .xml) or directory to write; default: the run directory")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 18)")
    parser.add_argument("--precision", default="f32", type=_precision, choices=common.LazyChoices(_precisions),
                        help="f32, or f16 weights (openvino only; fp32 / fp16 also accepted); "
                             "the parity tolerance follows it")
    parser.add_argument("--data", help="dataset whose test split is checked too (e.g. digits); "
                                       "default: random inputs only")
    common.add_json_arg(parser)
    parser.set_defaults(func=run)
    return parser


def _formats() -> list[str]:
    from trimnet.runtime.backend import export_formats

    return [f.name for f in export_formats()]


def _precisions() -> list[str]:
    from trimnet.runtime.backend import export_formats

    return list(dict.fromkeys(p.element for f in export_formats() for p in f.precisions))


def _precision(text: str) -> str:
    """A precision in any spelling as the runtimes spell it (fp16 -> f16); unknown ones left for argparse to refuse."""
    from trimnet.precision import Precision

    try:
        return Precision.parse(text).element
    except ValueError:
        return text


def run(args: argparse.Namespace) -> int:
    from trimnet.artifact import load_artifact
    from trimnet.runtime import DEFAULT_OPSET, export

    if args.overrides:
        keys = ", ".join(k for k, _ in args.overrides)
        raise ConfigError(f"trimnet export takes no config overrides (got {keys}); see trimnet export --help")
    if args.out:
        common.check_out_file(args.out) if common.Path(args.out).suffix else common.check_out(args.out)
    art = load_artifact(args.run_dir)
    dataset = None
    if args.data:
        import trimnet as tn

        dataset = tn.load_dataset(args.data)
        if dataset.in_shape != art.in_shape:
            raise ConfigError(f"--data {args.data} has inputs of shape {dataset.in_shape} but the model takes "
                              f"{art.in_shape}; pass the dataset the model was trained on")
    if args.opset is not None and not 7 <= args.opset <= 23:
        raise ConfigError(f"--opset {args.opset} is not an ONNX opset trimnet can export to; use 7 to 23 "
                          f"(default {DEFAULT_OPSET})")
    result = export(art, args.out or art.path, format=args.format, opset=args.opset or DEFAULT_OPSET,
                    precision=args.precision, dataset=dataset)
    if args.json:
        common.print_json(result.to_dict())
        return 0
    files = ", ".join(str(f) for f in result.files)
    print(f"wrote {files} ({result.format}, opset {result.opset}, {result.precision}) in {result.seconds:.1f} s")
    for case in result.parity.cases:
        top1 = "" if case.top1_agreement is None else f", top-1 agreement {case.top1_agreement:.1%}"
        print(f"parity {case.label}: max abs {case.max_abs:.2g}, relative {case.max_rel:.2g} "
              f"(limit {case.limit:.2g}){top1}")
    print(f"parity passed on {result.parity.runtime}")
    return 0
