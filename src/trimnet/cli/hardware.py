"""``trimnet hardware``: the device catalog, this machine's calibration, latency estimates, recommendations.

    trimnet hardware list
    trimnet hardware calibrate [--quick]
    trimnet hardware estimate runs/digits-cnn --device local --batch 1,32,256 --backend onnxruntime
    trimnet hardware estimate --model resnet50 --input-shape 1x3x224x224 --device h100-sxm --precision bf16
    trimnet hardware recommend --model resnet50 --input-shape 1x3x224x224 --target-latency 5ms
    trimnet hardware train-time --model resnet50 --samples 1281167 --epochs 90 --device a100-80gb,h100-sxm
    trimnet hardware train-time --total-flops 2e19 --precision bf16
"""

from __future__ import annotations

import argparse
import re

from trimnet.cli import common
from trimnet.errors import ConfigError

# input shapes (no batch) for zoo models named without --input-shape
DEFAULT_SHAPES = {"resnet18": (3, 224, 224), "resnet34": (3, 224, 224), "resnet50": (3, 224, 224),
                  "vgg16": (3, 224, 224), "vgg16_bn": (3, 224, 224), "mobilenetv2": (3, 224, 224),
                  "resnet20": (3, 32, 32), "resnet56": (3, 32, 32), "transformer": (3, 32, 32),
                  "bert_base_encoder": (128, 768), "cnn": (1, 8, 8), "lenet5": (1, 32, 32), "mlp": (64,)}


def add_parser(subparsers, name: str) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(name, help="hardware catalog, calibration, latency estimates, recommendations",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="hardware_command", metavar="ACTION")
    parser.set_defaults(func=lambda args: _missing_action(parser))

    p = sub.add_parser("list", help="the device catalog: peaks per precision, memory, bandwidth, power, source")
    _catalog_arg(p)
    common.add_json_arg(p)
    p.set_defaults(func=run_list)

    p = sub.add_parser("calibrate", help="measure this machine (achieved FLOP/s, bandwidth, overheads) as device 'local'")
    p.add_argument("--quick", action="store_true", help="fewer shapes and shorter timings (~10 s instead of ~60 s)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="what to calibrate (default auto)")
    p.add_argument("--threads", type=int, help="threads to measure with (default: torch's current count)")
    p.add_argument("--backends", help="comma-separated backends to calibrate (default: all usable here)")
    common.add_json_arg(p)
    p.set_defaults(func=run_calibrate)

    p = sub.add_parser("estimate", help="predict latency, throughput and the bound of each layer on a device")
    _model_args(p)
    p.add_argument("--device", default="local", help="comma-separated device names (default: local, the calibrated "
                                                     "machine; see `trimnet hardware list`)")
    p.add_argument("--batch", help="comma-separated batch sizes (default: the input shape's batch)")
    p.add_argument("--precision", help="fp32, tf32, fp16, bf16 or int8 (default: the model's, fp32)")
    p.add_argument("--backend", help="runtime on the local device: torch (default), torch-compile, onnxruntime, "
                                     "openvino, openvino:precision=bf16")
    p.add_argument("--utilization", help="override a catalog device's compute[,memory] share of peak, e.g. 0.4,0.8 "
                                         "(uses the datasheet model instead of the fitted curves)")
    _runtime_args(p)
    p.add_argument("--layers", action="store_true", help="print the per-layer roofline of each estimate")
    _catalog_arg(p)
    common.add_json_arg(p)
    p.set_defaults(func=run_estimate)

    p = sub.add_parser("recommend", help="devices that meet a latency or throughput target, and at which batch")
    _model_args(p)
    p.add_argument("--target-latency", help="latency per batch, like 5ms, 0.5s or 800us")
    p.add_argument("--target-throughput", help="samples per second, like 2000/s or 2k")
    p.add_argument("--precision", help="fp32, tf32, fp16, bf16 or int8 (default: the model's, fp32)")
    p.add_argument("--device", help="comma-separated devices to consider (default: the whole catalog, and local "
                                    "when calibrated)")
    p.add_argument("--batches", help="comma-separated batch sizes to try (default 1,2,4,...,1024)")
    p.add_argument("--backend", help="runtime on the local device (default torch)")
    _runtime_args(p)
    _catalog_arg(p)
    common.add_json_arg(p)
    p.set_defaults(func=run_recommend)

    p = sub.add_parser("train-time", help="training time per device from training FLOPs over achievable FLOP/s")
    _model_args(p, required=False)
    p.add_argument("--samples", type=int, help="training-set size")
    p.add_argument("--epochs", type=int, default=1, help="epochs (default 1)")
    p.add_argument("--total-flops", help="total training FLOPs instead of a model, like 2e19 or 20E")
    p.add_argument("--batch", type=int, help="training batch size (default: the input shape's, or 256 when the "
                                             "shape is not given)")
    p.add_argument("--device", help="comma-separated devices (default: every catalog device with the precision)")
    p.add_argument("--precision", help="fp32, tf32, fp16, bf16 or int8 (default: the model's, fp32)")
    p.add_argument("--gpus", type=int, default=1, help="data-parallel devices (adds a gradient all-reduce; default 1)")
    p.add_argument("--accumulation", type=int, default=1, help="micro-batches per optimizer step (default 1)")
    _catalog_arg(p)
    common.add_json_arg(p)
    p.set_defaults(func=run_train_time)
    return parser


def _missing_action(parser: argparse.ArgumentParser) -> int:
    raise ConfigError("trimnet hardware needs an action: list, calibrate, estimate, recommend or train-time "
                      "(see trimnet hardware --help)")


def _runtime_args(p: argparse.ArgumentParser) -> None:
    from trimnet.hardware.runtimes import RUNTIMES

    p.add_argument("--runtime", default="tensorrt", help=f"runtime on catalog devices: {' | '.join(RUNTIMES)} "
                                                          "(default tensorrt)")
    p.add_argument("--effective-seq", type=int, help="mean real tokens per sequence when the input shape is padded "
                                                     "(packed or unpadded batches), e.g. 180 of 384")


def _catalog_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--catalog", action="append", help="a YAML file of extra devices (repeatable; also "
                                                      "$TRIMNET_CATALOG)")


def _model_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("run_dir", nargs="?", help="a run directory (model.json + weights)")
    p.add_argument("--model", help="a registered model name (see trimnet.list_models()) or path/file.py:function")
    p.add_argument("--input-shape", help="input shape with the batch first, like 1x3x224x224 (known zoo models "
                                         "default to their usual size)")
    p.add_argument("--num-classes", type=int, default=1000, help="classes for --model (default 1000)")
    p.set_defaults(model_required=required)


# ---------------------------------------------------------------- parsing helpers

def _no_overrides(args: argparse.Namespace) -> None:
    if getattr(args, "overrides", None):
        keys = ", ".join(k for k, _ in args.overrides)
        raise ConfigError(f"trimnet hardware takes no config overrides (got {keys}); see trimnet hardware --help")


def _names(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _ints(text: str | None, what: str) -> list[int] | None:
    if not text:
        return None
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers like 1,32,256; got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise ConfigError(f"{what} must be positive integers; got {text!r}")
    return values


_SI = {"": 1.0, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15, "e": 1e18}


def parse_latency(text: str) -> float:
    """``"5ms"`` -> 0.005 seconds (units: s, ms, us)."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e-?[0-9]+)?)\s*(s|ms|us|µs)\s*", text.lower())
    if not m:
        raise ConfigError(f"latency {text!r} needs a unit, like 5ms, 0.5s or 800us")
    value = float(m.group(1)) * {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}[m.group(2)]
    if value <= 0:
        raise ConfigError(f"latency must be positive; got {text!r}")
    return value


def parse_rate(text: str) -> float:
    """``"2000/s"``, ``"2k"`` -> samples per second."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmg]?)\s*(?:/s|/sec|samples/s)?\s*", text.lower())
    if not m:
        raise ConfigError(f"throughput {text!r} is not like 2000/s or 2k")
    value = float(m.group(1)) * _SI[m.group(2)]
    if value <= 0:
        raise ConfigError(f"throughput must be positive; got {text!r}")
    return value


def parse_flops(text: str) -> float:
    """``"2e19"``, ``"20E"``, ``"20 EFLOP"`` -> FLOPs."""
    m = re.fullmatch(r"\s*([0-9.]+(?:e[0-9]+)?)\s*([kmgtpe]?)\s*(?:flops?|flop)?\s*", text.lower())
    if not m:
        raise ConfigError(f"total FLOPs {text!r} is not like 2e19 or 20E")
    value = float(m.group(1)) * _SI[m.group(2)]
    if value <= 0:
        raise ConfigError(f"total FLOPs must be positive; got {text!r}")
    return value


def _utilization(text: str | None) -> tuple[float, float] | None:
    if not text:
        return None
    try:
        parts = [float(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError(f"--utilization must be like 0.5 or 0.5,0.8; got {text!r}") from None
    if len(parts) not in (1, 2) or not all(0 < p <= 1 for p in parts):
        raise ConfigError(f"--utilization must be one or two shares in (0, 1], like 0.5,0.8; got {text!r}")
    return (parts[0], parts[1] if len(parts) == 2 else 0.8)


def _profile(args: argparse.Namespace, training: bool = False):
    """(profile, batch of the input shape, whether the shape was given) for a run directory or --model."""
    from trimnet.profile import profile

    if args.run_dir and args.model:
        raise ConfigError("pass a run directory or --model, not both")
    shape = common.parse_shape(args.input_shape) if args.input_shape else None
    if shape is not None and len(shape) < 2:
        raise ConfigError(f"--input-shape {args.input_shape} needs a batch dimension first, like 1x{args.input_shape}")
    if args.run_dir:
        from trimnet.artifact import load_artifact

        artifact = load_artifact(args.run_dir)
        model, full = artifact.model, shape or (1, *artifact.in_shape)
    elif args.model:
        if shape is None:
            if args.model not in DEFAULT_SHAPES:
                raise ConfigError(f"--model {args.model} needs --input-shape with the batch first, like 1x3x224x224")
            shape = (1, *DEFAULT_SHAPES[args.model])
        from trimnet.models import create_model

        model, full = create_model(args.model, in_shape=shape[1:], num_classes=args.num_classes), shape
    else:
        raise ConfigError("pass a run directory or --model NAME [--input-shape 1x3x224x224]")
    return profile(model, input_shape=full, training=training), full[0], args.input_shape is not None


# ---------------------------------------------------------------- list

def run_list(args: argparse.Namespace) -> int:
    from trimnet.hardware import PRECISIONS, load_catalog
    from trimnet.hardware.calibration import load_calibration

    _no_overrides(args)
    catalog = load_catalog(args.catalog)
    local = None
    try:
        local = load_calibration("cpu", check=True)
    except ConfigError as exc:
        local_note = str(exc)
    else:
        local_note = f"local: calibrated {local.created} on {local.machine.get('cpu')} ({local.path})"
    if args.json:
        common.print_json({"devices": [d.to_dict() for d in catalog.values()],
                           "local": _local_summary(local) if local else None, "local_note": local_note})
        return 0
    headers = ["device", "kind", *[f"{p} TFLOPS" for p in PRECISIONS], "memory GB", "GB/s", "TDP W", "datasheet util c/m"]
    rows = []
    for d in catalog.values():
        rows.append([d.key, d.kind, *[_tf(d.peak_flops.get(p)) for p in PRECISIONS],
                     f"{d.memory_bytes / 1e9:g}" if d.memory_bytes else "-", f"{d.bandwidth / 1e9:g}",
                     f"{d.tdp_w:g}" if d.tdp_w else "-", f"{d.compute_utilization:g}/{d.memory_utilization:g}"])
    print(common.format_table(headers, rows))
    print("\nDense peaks (sparse figures halved). Sources:")
    for d in catalog.values():
        print(f"  {d.key}: {d.source}" + (f"\n      assumes: {d.assumption}" if d.assumption else ""))
    print(f"\n{local_note}")
    return 0


def _tf(v: float | None) -> str:
    if v is None:
        return "-"
    t = v / 1e12
    return f"{t:.3g}" if t < 10 else f"{t:,.1f}".rstrip("0").rstrip(".")


def _local_summary(cal) -> dict:
    from trimnet.hardware.calibration import summary

    return {"path": cal.path, "created": cal.created, "machine": cal.machine, "quick": cal.quick,
            "seconds": cal.seconds, "series": summary(cal), "skipped": cal.skipped}


# ---------------------------------------------------------------- calibrate

def run_calibrate(args: argparse.Namespace) -> int:
    from trimnet.hardware import calibrate
    from trimnet.hardware.calibration import summary

    _no_overrides(args)
    cal = calibrate(quick=args.quick, device=args.device, threads=args.threads, backends=_names(args.backends))
    if args.json:
        common.print_json({**_local_summary(cal), "points": cal.points})
        return 0
    rows = []
    for r in summary(cal):
        best = _best(cal.points, r["series"])
        rows.append([r["series"], f"{r['call_us']:.1f}", f"{r['layer_us']:.1f}", f"{best.get('matmul', 0):.1f}",
                     f"{best.get('conv', 0):.1f}", f"{r['matmul_peak_gflops']:.1f}", f"{r['conv_peak_gflops']:.1f}",
                     f"{r['cache_gbs']:.1f}", f"{r['dram_gbs']:.1f}",
                     f"{100 * r['matmul_fit_error']:.0f}/{100 * r['conv_fit_error']:.0f}" if not r["borrowed"]
                     else f"kernels of {r['borrowed']}"])
    print(f"{cal.machine['cpu']}, {cal.machine['threads']} threads, torch {cal.machine['torch']}"
          + (f", {cal.machine['gpu']}" if cal.machine.get("gpu") else "") + f": {cal.seconds:.0f} s")
    print(common.format_table(["series", "call us", "layer us", "best matmul GFLOP/s", "best conv GFLOP/s",
                               "fit matmul peak", "fit conv peak", "GB/s at 1 MB", "DRAM GB/s", "fit err % mm/conv"],
                              rows))
    for what, why in cal.skipped.items():
        print(f"skipped {what}: {why}")
    print(f"saved {cal.path}")
    return 0


def _best(points: list[dict], series: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in points:
        if p["series"] == series and p["op"] in ("matmul", "conv"):
            out[p["op"]] = max(out.get(p["op"], 0.0), p["flops"] / p["seconds"] / 1e9)
    return out


# ---------------------------------------------------------------- estimate

def run_estimate(args: argparse.Namespace) -> int:
    from trimnet.hardware import describe_error, estimate, load_catalog

    _no_overrides(args)
    catalog = load_catalog(args.catalog)
    prof, shape_batch, _ = _profile(args)
    batches = _ints(args.batch, "--batch") or [shape_batch]
    devices = _names(args.device) or ["local"]
    util = _utilization(args.utilization)
    ests = [estimate(prof, d, args.precision, b, backend=args.backend if d.startswith("local") else None,
                     catalog=catalog, utilization=None if d.startswith("local") else util,
                     **({} if d.startswith("local") else {"runtime": args.runtime, "effective_seq": args.effective_seq}))
            for d in devices for b in batches]
    if args.json:
        common.print_json({"model": prof.model, "flops_per_sample": prof.per_sample()["flops"],
                           "estimates": [e.to_dict() for e in ests]})
        return 0
    headers = ["device", "runtime", "precision", "batch", "latency ms", "samples/s", "GFLOP/s", "utilization",
               "bound", "memory MB", "fits", "± band"]
    rows = [[e.device, e.backend or e.assumptions.get("runtime", "optimized"), e.precision, e.batch, _ms(e.latency_s), f"{e.throughput:,.0f}",
             f"{e.achieved_flops / 1e9:,.1f}", f"{100 * e.utilization:.1f} %", e.bound,
             f"{e.memory['total_bytes'] / 2**20:,.1f}", {True: "yes", False: "NO", None: "?"}[e.memory["fits"]],
             f"{100 * e.error['band']:.0f} %" if isinstance(e.error.get("band"), float) else "-"]
            for e in ests]
    print(f"{prof.model}: {prof.per_sample()['flops'] / 1e9:.3f} GFLOPs per sample")
    print(common.format_table(headers, rows))
    if args.layers:
        for e in ests:
            print(f"\n{e.device} batch {e.batch}:")
            print(_layer_table(e))
    _print_assumptions(ests)
    for line in dict.fromkeys(describe_error(e.error) for e in ests):
        print(line)
    return 0


def _ms(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.3f}" if ms < 10 else f"{ms:.1f}" if ms < 1000 else f"{ms:,.0f}"


def _layer_table(e) -> str:
    rows = [[t.name or "(model)", t.type, f"{t.flops / 1e6:.2f}", f"{t.bytes / 1e3:.1f}", f"{t.compute_s * 1e6:.1f}",
             f"{t.memory_s * 1e6:.1f}", f"{t.overhead_s * 1e6:.1f}", f"{t.time_s * 1e6:.1f}", t.bound]
            for t in e.layers]
    return common.format_table(["layer", "type", "MFLOPs", "KB", "compute us", "memory us", "overhead us", "time us",
                                "bound"], rows)


def _print_assumptions(ests) -> None:
    seen = set()
    for e in ests:
        a = e.assumptions
        key = (e.device, e.precision, e.backend)
        if key in seen:
            continue
        seen.add(key)
        if a["source"] == "fitted":
            print(f"{e.device}: {e.precision} peak {a['peak_flops'] / 1e12:g} TFLOP/s x fitted efficiency "
                  f"{a['efficiency']:.2f} ({a['efficiency_from']}) x GEMM fill m/(m+{a['half_m']:.0f}) "
                  f"k/(k+{a['half_k']:.0f}) n/(n+{a['half_n']:.0f}); {a['runtime']}: "
                  f"{a['call_overhead_s'] * 1e6:.0f} us per call, {a['overhead_per_layer_s'] * 1e6:.1f} us per layer "
                  f"({a['runtime_overheads']})" + (f"; {100 * a['effective_token_share']:.0f} % of tokens real"
                                                   if a["effective_token_share"] != 1 else ""))
        elif a["source"] == "catalog":
            print(f"{e.device}: {e.precision} peak {a['peak_flops'] / 1e12:g} TFLOP/s x {a['compute_utilization']:g} "
                  f"assumed utilization, {a['bandwidth'] / 1e9:g} GB/s x {a['memory_utilization']:g}, "
                  f"{a['overhead_per_layer_s'] * 1e6:g} us per layer; {a['runtime']}")
        else:
            print(f"{e.device}: calibrated {a['calibrated']} on {a['machine']} ({a['threads']} threads), "
                  f"{a['backend']} {a['precision']}: per-layer FLOP/s measured by kernel shape, "
                  f"call overhead {a['call_overhead_s'] * 1e6:.0f} us" + (", quick calibration" if a["quick"] else ""))
        for note in e.notes:
            print(f"  note: {note}")


# ---------------------------------------------------------------- recommend

def run_recommend(args: argparse.Namespace) -> int:
    from trimnet.hardware import describe_error, load_catalog, recommend

    _no_overrides(args)
    latency = parse_latency(args.target_latency) if args.target_latency else None
    rate = parse_rate(args.target_throughput) if args.target_throughput else None
    if latency is None and rate is None:
        raise ConfigError("give --target-latency (like 5ms) and/or --target-throughput (like 2000/s)")
    catalog = load_catalog(args.catalog)
    prof, _, _ = _profile(args)
    kwargs = {"batches": _ints(args.batches, "--batches")} if args.batches else {}
    rec = recommend(prof, target_latency=latency, target_throughput=rate, precision=args.precision,
                    devices=_names(args.device), catalog=catalog, backend=args.backend, runtime=args.runtime,
                    effective_seq=args.effective_seq, **kwargs)
    if args.json:
        common.print_json({"model": prof.model, **rec.to_dict()})
        return 0
    rows = []
    for c in rec.candidates:
        mem = c.memory or {}
        rows.append([c.device, "yes" if c.meets else "no", c.batch if c.batch is not None else "-",
                     _ms(c.latency_s) if c.latency_s is not None else "-",
                     f"{c.throughput:,.0f}" if c.throughput is not None else "-",
                     f"{c.headroom:.3g}x" if c.headroom is not None else "-",
                     f"{mem['total_bytes'] / 2**30:.2f}" if mem else "-",
                     {True: "yes", False: "NO", None: "?"}[mem.get("fits")] if mem else "-",
                     f"±{100 * c.band:.0f} %" if c.band else "-",
                     f"{c.price_usd_hour:g}" if c.price_usd_hour else "-",
                     f"{c.tdp_w:g}" if c.tdp_w else "-", c.reason or ""])
    print(rec.message)
    print(common.format_table(["device", "meets", "batch", "latency ms", "samples/s", "headroom", "memory GiB",
                               "fits", "band", "$/h", "TDP W", "why not"], rows))
    print(f"Catalog devices: efficiency curves fitted to published measurements, runtime {args.runtime}; a target "
          "counts as met only at the pessimistic edge of the band; ranked by price where given, else TDP.")
    return 0


# ---------------------------------------------------------------- train-time

def run_train_time(args: argparse.Namespace) -> int:
    from trimnet.hardware import load_catalog, train_time

    _no_overrides(args)
    catalog = load_catalog(args.catalog)
    total = parse_flops(args.total_flops) if args.total_flops else None
    prof, batch = None, None
    if args.run_dir or args.model:
        prof, shape_batch, given = _profile(args, training=True)
        batch = args.batch or (shape_batch if given else 256)
        if total is None and args.samples is None:
            raise ConfigError("give --samples N (and --epochs E), or --total-flops")
    elif total is None:
        raise ConfigError("give a model (--model NAME or a run directory) with --samples, or --total-flops like 2e19")
    rows = train_time(prof, samples=args.samples, epochs=args.epochs, total_flops=total,
                      devices=_names(args.device), precision=args.precision, batch=batch, catalog=catalog,
                      gpus=args.gpus, accumulation=args.accumulation)
    if args.json:
        common.print_json({"model": prof.model if prof else None, "samples": args.samples, "epochs": args.epochs,
                           "batch": batch, "results": [r.to_dict() for r in rows]})
        return 0
    if not rows:
        raise ConfigError(f"no catalog device has a {args.precision} figure; see trimnet hardware list")
    print(f"{rows[0].total_flops:.3g} FLOPs of training" + (f" ({prof.model}, {args.samples:,} samples x "
                                                             f"{args.epochs} epochs, batch {batch})" if prof and args.samples else ""))
    table = [[r.device, r.precision, f"{r.achievable_flops / 1e12:,.2f}", f"{100 * r.utilization:.0f} %",
              _duration(r.seconds), f"{r.energy_kwh:,.1f}" if r.energy_kwh is not None else "-", r.basis] for r in rows]
    print(common.format_table(["device", "precision", "TFLOP/s", "of peak", "time", "kWh at TDP", "assumes"], table))
    if any(r.step_s for r in rows):
        print("Fitted devices: forward + backward + optimizer step from curves fitted to published training figures"
              + (f", {args.gpus} devices with a gradient all-reduce" if args.gpus > 1 else "") + "; no data loading.")
        err = next((r.error for r in rows if r.error), None)
        if err:
            from trimnet.hardware import describe_error

            print(describe_error(err))
    else:
        print("Forward + backward FLOPs, optimizer step excluded; one device, no data-loading or communication time.")
    return 0


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.1f} s"
