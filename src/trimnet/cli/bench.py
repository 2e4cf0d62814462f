"""``trimnet bench``: latency and throughput per backend and batch size, or an interleaved A/B comparison.

    trimnet bench runs/digits-cnn --backends torch,torch-compile,onnxruntime,openvino --batch 1,32,256
    trimnet bench --model resnet18 --input-shape 1x3x224x224 --json > r18.json
    trimnet bench runs/digits-cnn --backends openvino:precision=bf16:hint=throughput
    trimnet bench runs/digits-cnn --compare onnxruntime openvino      # two backends, one model
    trimnet bench --compare runs/a runs/b --backends onnxruntime       # two models, one backend

Measurement settings are dotted flags: --bench.min_time_s=2 --bench.warmup_window=3 (see docs/bench.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from trimnet.cli import common
from trimnet.errors import ConfigError


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help="measure latency and throughput on inference backends",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", help="a run directory, or a .onnx / .xml file")
    common.add_config_args(parser, _default_config, "bench.")
    parser.add_argument("--model", help="a registered model name or path/file.py:function, randomly initialized (needs --input-shape)")
    parser.add_argument("--input-shape", help="input shape with the batch first, like 1x3x224x224")
    parser.add_argument("--num-classes", type=int, default=1000, help="classes for --model (default 1000)")
    parser.add_argument("--backends", help="comma-separated backends, each name[:key=value...] "
                                           "(default: torch,onnxruntime,openvino where installed)")
    parser.add_argument("--batch", help="comma-separated batch sizes, like 1,32,256 "
                                        "(default: the --input-shape batch, or 1)")
    parser.add_argument("--threads", type=int, help="threads for every backend (default: the cores other work leaves free, measured)")
    parser.add_argument("--min-time", type=float, help="seconds to measure each case at least (default 1)")
    parser.add_argument("--max-time", type=float, help="seconds to measure each case at most (default 10)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="measure A and B interleaved: two backends (one model) or two run directories")
    parser.add_argument("--out", help="also write the JSON result to this file")
    parser.add_argument("--list-backends", action="store_true", help="list the backends and whether they run here")
    common.add_json_arg(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from trimnet.bench import benchmark, compare

    if args.list_backends:
        return _list_backends(args)
    if args.out:
        common.check_out_file(args.out)
    cfg = _config(args)
    if args.print_config:
        common.print_config(cfg, "bench")
        return 0
    batches = _batches(args)
    if args.compare:
        result = _compare(args, cfg, batches, compare)
    else:
        model, example = _source(args)
        backends = _split(args.backends) if args.backends else _default_backends()
        result = benchmark(model, example, backends=backends, batch_sizes=batches, config=cfg)
    if args.out:
        from trimnet.artifact import write_json

        write_json(Path(args.out), result.to_dict())
    if args.json:
        common.print_json(result.to_dict())
    else:
        print(result.table())
    return 0


def _compare(args: argparse.Namespace, cfg, batches, compare):
    a, b = args.compare
    if Path(a).exists() and Path(b).exists():
        if args.source or args.model:
            raise ConfigError("--compare with two run directories takes no other model; drop the source / --model")
        backends = _split(args.backends) if args.backends else ["torch"]
        if len(backends) != 1:
            raise ConfigError(f"--compare of two models runs them on one backend; got --backends {args.backends}")
        example = _example_from_shape(args)
        return compare(a, b, example, backend_a=backends[0], batch_sizes=batches, config=cfg)
    if Path(a).exists() or Path(b).exists():
        raise ConfigError(f"--compare takes two run directories or two backends, not one of each ({a}, {b})")
    if args.backends:
        raise ConfigError("--compare A B with backends names them itself; drop --backends")
    model, example = _source(args)
    return compare(model, None, example, backend_a=a, backend_b=b, batch_sizes=batches, config=cfg)


def _source(args: argparse.Namespace):
    """(model or path, example inputs or None) from the positional source or --model."""
    if args.source and args.model:
        raise ConfigError("pass a run directory (or exported file) or --model, not both")
    if args.model:
        if not args.input_shape:
            raise ConfigError("--model needs --input-shape, like --input-shape 1x3x224x224")
        shape = common.parse_shape(args.input_shape)
        from trimnet.models.checked import create_checked

        model = create_checked(args.model, shape[1:], args.num_classes).eval()
        return model, _example_from_shape(args)
    if not args.source:
        raise ConfigError("nothing to measure: pass a run directory, a .onnx / .xml file, or --model NAME")
    return args.source, _example_from_shape(args)


def _example_from_shape(args: argparse.Namespace):
    if not args.input_shape:
        return None
    import torch

    shape = common.parse_shape(args.input_shape)
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _default_config():
    from trimnet.bench import BenchConfig

    return BenchConfig()


def _config(args: argparse.Namespace):
    from trimnet.bench import BenchConfig
    from trimnet.config import apply_overrides, from_dict, load_yaml, merge

    flags = {"threads": args.threads, "min_time_s": args.min_time, "max_time_s": args.max_time}
    data: dict = {}
    if args.config:
        loaded = load_yaml(args.config)
        data = dict(loaded.get("bench", {})) if isinstance(loaded.get("bench"), dict) else loaded
    data = {"bench": merge(data, {k: v for k, v in flags.items() if v is not None})}
    data = apply_overrides(data, args.overrides)
    unknown = sorted(set(data) - {"bench"})
    if unknown:
        raise ConfigError(f"trimnet bench takes only bench.* overrides (got {unknown[0]}.*); see docs/bench.md")
    cfg = from_dict(BenchConfig, data["bench"], "bench")
    if args.max_time is None and "max_time_s" not in data["bench"] and cfg.max_time_s < cfg.min_time_s:
        cfg = cfg.replace(max_time_s=cfg.min_time_s)
    return cfg.validate()


def _batches(args: argparse.Namespace) -> list[int] | None:
    if args.batch:
        try:
            return [int(b) for b in _split(args.batch)]
        except ValueError:
            raise ConfigError(f"--batch {args.batch!r} is not like 1,32,256") from None
    if args.input_shape:
        return [common.parse_shape(args.input_shape)[0]]
    return None


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _default_backends() -> list[str]:
    from trimnet.bench import DEFAULT_BACKENDS
    from trimnet.runtime import list_backends

    usable = list_backends()
    return [b for b in (*DEFAULT_BACKENDS, "torch-cuda", "onnxruntime-cuda") if b in usable]


def _list_backends(args: argparse.Namespace) -> int:
    from trimnet.runtime import BACKENDS, backend_status

    status = backend_status()
    if args.json:
        common.print_json({name: {"usable": why is None, "reason": why, "summary": BACKENDS.get(name).summary,
                                  "options": BACKENDS.get(name).options,
                                  "precisions": [p.value for p in BACKENDS.get(name).precisions],
                                  "export": BACKENDS.get(name).export} for name, why in status.items()})
        return 0
    rows = [[name, "yes" if why is None else "no", BACKENDS.get(name).summary, ", ".join(BACKENDS.get(name).options),
             why or ""] for name, why in status.items()]
    print(common.format_table(["backend", "usable", "what", "options", "why not"], rows))
    return 0

