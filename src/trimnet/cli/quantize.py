"""``trimnet quantize``: lower a run's precision on a runtime, measure accuracy and speed, keep the faster."""

from __future__ import annotations

import argparse

from trimnet.cli.common import add_config_args, add_json_arg, format_table, print_config, print_json, section_config
from trimnet.cli.fuse import parse_batches, prepare_out


def add_parser(sub, name: str) -> None:
    p = sub.add_parser(name, help="lower precision (bf16, fp16, int8, int8-dynamic) on a runtime into a new run",
                       description="Quantize a trained model with the runtime's own tool, report test accuracy and "
                                   "speed before and after, and keep the faster of fp32 and the lower precision. "
                                   "The input run is never changed.")
    p.add_argument("run_dir", nargs="?", help="run directory (from trimnet train)")
    add_config_args(p, _default_config, "quantize.")
    p.add_argument("--precision", help="bf16, fp16, int8 (static, calibrated) or int8-dynamic")
    p.add_argument("--backend", help="runtime: openvino, onnxruntime or torch (default: openvino; onnxruntime for "
                                     "int8-dynamic)")
    p.add_argument("--calibration", type=int, metavar="N", help="training samples that calibrate INT8 "
                                                                            "(default 300)")
    p.add_argument("--per-tensor", action="store_true", default=None, help="one INT8 scale per weight tensor instead of per channel")
    p.add_argument("--fast-bias-correction", action="store_true", default=None,
                   help="openvino int8: NNCF's fast bias correction (about 2x quicker on big models, a little less accurate)")
    p.add_argument("--max-accuracy-drop", type=float, metavar="F",
                   help="reject (exit 2, nothing written) a result losing more test accuracy than F (0.005 = 0.5 points)")
    p.add_argument("--batch-sizes", help="batch sizes to time fp32 and the result at (default 1,64)")
    p.add_argument("--keep-slower", action="store_true", default=None, help="keep the lower precision even where fp32 is faster")
    p.add_argument("--no-fuse", action="store_true", default=None, help="do not fold BatchNorm / merge linear layers first")
    p.add_argument("--bench-time", type=float, metavar="S", help="seconds timed per batch size (default 1)")
    p.add_argument("--threads", type=int, help="threads for every runtime (default: torch's)")
    p.add_argument("--out", help="run directory to write (default RUN_DIR-PRECISION-BACKEND)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    p.add_argument("--list-methods", action="store_true", help="list the precision/backend pairs and exit")
    add_json_arg(p)
    p.set_defaults(func=run)


def _default_config():
    from trimnet.optimize.quantize import QuantizeConfig

    return QuantizeConfig()


def run(args: argparse.Namespace) -> int:
    import trimnet as tn
    from trimnet.errors import ConfigError
    from trimnet.optimize.quantize import AccuracyDropError, ParityMismatch, QuantizeConfig, list_methods, quantize

    if args.list_methods:
        methods = list_methods()
        if args.json:
            print_json({"methods": methods})
        else:
            print(format_table(["precision", "backend", "method"], [[m["precision"], m["backend"], m["summary"]]
                                                                   for m in methods]))
        return 0
    # the short flags are --quantize.KEY in another spelling
    flags = {"precision": args.precision, "backend": args.backend, "calibration": args.calibration,
             "per_channel": None if args.per_tensor is None else not args.per_tensor,
             "fast_bias_correction": args.fast_bias_correction, "max_accuracy_drop": args.max_accuracy_drop,
             "fuse": None if args.no_fuse is None else not args.no_fuse,
             "batch_sizes": parse_batches(args.batch_sizes) if args.batch_sizes else None,
             "keep_slower": args.keep_slower, "bench_time_s": args.bench_time, "threads": args.threads}
    cfg = section_config(QuantizeConfig, "quantize", args.config, flags, args.overrides, "quantize")
    if args.print_config:
        print_config(cfg, "quantize")
        return 0
    if not args.run_dir:
        raise ConfigError("pass the run directory to quantize, e.g. trimnet quantize runs/digits-cnn --precision int8")
    art = tn.load_artifact(args.run_dir)
    from trimnet.cli.common import check_out

    out = check_out(prepare_out(art.path, args.out, f"{cfg.precision}-{cfg.resolved_backend}", args.overwrite))
    try:
        result = quantize(art, None, cfg, out=out)
    except (AccuracyDropError, ParityMismatch) as exc:
        _show(exc.result, args.json, accepted=False)
        raise
    _show(result, args.json, accepted=True)
    return 0


def _show(result, as_json: bool, accepted: bool) -> None:
    if as_json:
        print_json({"accepted": accepted, "run": (result.source or {}).get("path"), **result.to_dict()})
        return
    src = (result.source or {}).get("path")
    where = f" -> {result.path}" if result.path else " (rejected, nothing written)"
    d = result.details
    calib = f", {d['calibration_samples']} calibration samples" if "calibration_samples" in d else ""
    print(f"{src}{where}: {result.precision} on {result.backend} ({d.get('tool')}{calib})\n")
    rows = [["test accuracy", result.accuracy_before, result.accuracy_after,
             f"{-result.accuracy_drop * 100:+.2f} points"]]
    rows += [[f"batch {m.batch} (ms)", m.fp32_ms, m.lowp_ms, f"{m.speedup:.2f}x"] for m in result.latency]
    print(format_table(["", "fp32", result.precision, "change"], rows))
    parity = result.parity
    sqnr = f"SQNR {parity['sqnr_db']:.1f} dB, " if parity.get("sqnr_db") is not None else ""
    print(f"\nparity with fp32 PyTorch: {sqnr}max |diff| {parity['max_abs']:.3g} ({parity['max_rel']:.2%} of max "
          f"|output|): {'passes' if parity['passed'] else 'FAILS'} {parity.get('criterion', '')}")
    if result.fuse:
        print(f"fused first: {result.fuse['summary']}")
    if result.note and result.note != result.reason:
        print(f"note: {result.note}")
    print(f"kept {result.kept}: {result.reason}")
    if result.layers:
        print()
        print(format_table(["layer", "op", "runs in", "how"],
                           [[r["layer"], r["op"], r["precision"], r.get("quantized", "")] for r in result.layers]))
