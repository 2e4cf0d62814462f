"""The main job, ``trimnet run``: train → profile → hardware estimate → optimize → export →
benchmark original against winner → report. The only module that knows the whole path.

Each stage's output lands in the run directory as it finishes, so an interrupted run
resumes: a trained model is not trained again, and the optimizer's finished candidates
come from its cache.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from trimnet.config import CONFIG_VERSION, DataConfig, ModelConfig, RunConfig, TrainConfig
from trimnet.errors import TrimnetError
from trimnet.optimize.search import OptimizeConfig

log = logging.getLogger("trimnet.run")
CATALOG_DEVICES = ["t4", "l4", "a100-80gb", "h100-sxm"]


@dataclass
class MeasureConfig:
    devices: list = field(default_factory=lambda: list(CATALOG_DEVICES))  # catalog devices to estimate on
    backends: list = field(default_factory=list)  # backends original and winner are timed on; empty: all installed


@dataclass
class PipelineConfig:
    version: int = CONFIG_VERSION
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=15))
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    measure: MeasureConfig = field(default_factory=MeasureConfig)
    train_from: str | None = None  # an existing run directory instead of training
    out: str | None = None

    def validate(self) -> None:
        self.run_config().validate()
        self.optimize.validate()

    def run_config(self) -> RunConfig:
        return RunConfig(version=self.version, data=self.data, model=self.model, train=self.train, out=self.out)


@dataclass
class PipelineResult:
    out: Path
    summary: dict
    report: Path | None


class _Stages:
    def __init__(self, say: Callable[[str], None]):
        self.say = say
        self.times: list[dict] = []

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self.say(f"[{len(self.times) + 1}] {name} ...")
        t0 = time.perf_counter()
        yield
        seconds = time.perf_counter() - t0
        self.times.append({"name": name, "seconds": seconds})
        self.say(f"    {name} done in {seconds:.1f} s")


def run_pipeline(cfg: PipelineConfig, *, say: Callable[[str], None] | None = None) -> PipelineResult:
    import trimnet as tn
    from trimnet.artifact import load_artifact, write_json
    from trimnet.optimize.search import optimize

    cfg.validate()
    say = say or log.info
    out = Path(cfg.out or "runs/run")
    out.mkdir(parents=True, exist_ok=True)
    stage = _Stages(say)
    started = time.perf_counter()

    with stage("train"):
        source = Path(cfg.train_from) if cfg.train_from else out / "original"
        if cfg.train_from or (source / "model.json").exists():
            say(f"    using the trained model in {source}")
            art = load_artifact(source, rebuild=True)
            from trimnet.train.evaluate import dataset_of

            data = dataset_of(art) if art.meta.get("data") else tn.load_dataset(config=cfg.data)
        else:
            data = tn.load_dataset(config=cfg.data)
            torch.manual_seed(cfg.train.seed)
            model = tn.create_model(cfg.model.name, data.in_shape, data.num_classes, **cfg.model.options)
            resume = (source / "checkpoints" / "last.pt").exists()
            tn.train(model, data, cfg.train, source, resume=resume, run_config=cfg.run_config())
            art = load_artifact(source, rebuild=True)
        model = art.model
    example = data.x_test[:1].float()

    with stage("profile"):
        prof = tn.profile(model, example)
        train_prof = tn.profile(model, data.x_train[:cfg.train.batch_size].float(), training=True)

    with stage("hardware estimate"):
        hardware, train_time, hardware_note = _hardware(prof, train_prof, data, cfg)

    with stage("optimize"):
        result = optimize(model, data, cfg.optimize, out=out, progress=lambda m: say("    " + m))

    with stage("export winner"):
        best_dir = out / "best"
        _save_winner(result, art, best_dir)
        say(f"    winner written to {best_dir}")

    with stage("benchmark"):
        backends_table, target_rows = _benchmark(model, result, data, cfg)

    summary = _summary(cfg, art, prof, result, hardware, hardware_note, train_time, backends_table, target_rows,
                       stage.times, out, data=data, model=model)
    from trimnet.report.html import dumps

    from trimnet.artifact import atomic_write

    atomic_write(out / "summary.json", dumps(summary))
    report = None
    with stage("report"):
        try:
            from trimnet.report import build_report

            report = build_report(out)
        except TrimnetError as why:  # the report extra is optional; the run's results stand
            say(f"    no report: {why}")
    summary["stages"] = stage.times
    summary["total_seconds"] = time.perf_counter() - started
    atomic_write(out / "summary.json", dumps(summary))
    if report is not None:
        from trimnet.report import build_report

        build_report(out)  # again, now with the report stage's own time
    write_json(out / "optimize.json", result.to_dict())
    return PipelineResult(out=out, summary=summary, report=report)


def _hardware(prof, train_prof, data, cfg: PipelineConfig) -> tuple[list[dict], list[dict], str]:
    from trimnet.hardware import estimate, train_time

    rows, notes = [], []
    for device in ["local", *cfg.measure.devices]:
        for batch in (cfg.optimize.batch, cfg.optimize.throughput_batch):
            try:
                kwargs = {"backend": cfg.optimize.target_backend} if device == "local" else {}
                e = estimate(prof, device=device, batch=batch, **kwargs)
            except TrimnetError as why:
                if device == "local":
                    notes.append(f"local: {why}")
                    break
                raise
            rows.append({"device": e.device_name if device != "local" else f"this machine ({cfg.optimize.target_backend})",
                         "precision": e.precision, "batch": batch, "latency_ms": e.latency_s * 1e3,
                         "throughput": e.throughput, "bound": e.bound})
    times = []
    samples = len(data.y_train)
    for t in train_time(train_prof, samples=samples, epochs=cfg.train.epochs, devices=cfg.measure.devices):
        times.append({"device": t.device_name, "flops": t.total_flops, "seconds": t.seconds, "human": _human(t.seconds)})
    note = ("Roofline estimates from the profiler's per-layer FLOPs and bytes; catalog devices at their assumed "
            f"utilization (see docs/hardware.md). Training: {cfg.train.epochs} epochs of {samples} samples. "
            + " ".join(notes))
    return rows, times, note


def _human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1), ("ms", 1e-3)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e6:.3g} µs"


def _save_winner(result, art, best_dir: Path) -> None:
    from trimnet.artifact import save_artifact

    meta_extra = {k: art.meta[k] for k in ("data", "kind") if k in art.meta}
    if result.quantized is not None:
        result.quantized.save(best_dir)
        return
    save_artifact(result.model, best_dir, in_shape=art.in_shape, class_names=art.class_names,
                  normalization=art.normalization, extra={**meta_extra, "optimized": result.best.to_dict()},
                  metrics={"test_accuracy": result.test_accuracy})
    try:
        from trimnet.runtime import export

        export(result.model, best_dir / "model.onnx", torch.zeros((1, *art.in_shape)))
    except TrimnetError as why:
        log.warning("the winner was saved but not exported to ONNX: %s", why)


def _benchmark(model, result, data, cfg: PipelineConfig) -> tuple[list[dict], list[dict]]:
    """Original and winner (fp32 PyTorch module) on every installed backend, batch 1 and the throughput batch."""
    import trimnet as tn
    from trimnet.bench.config import BenchConfig
    from trimnet.runtime import list_backends

    # PyTorch first: another runtime's idle worker threads in this process can slow its OpenMP pool
    backends = cfg.measure.backends or sorted((b for b in list_backends() if not b.endswith("cuda")),
                                              key=lambda b: not b.startswith("torch"))
    bench_cfg = BenchConfig(min_time_s=0.5, max_time_s=2.0, warmup_max_s=2.0)
    batches = sorted({cfg.optimize.batch, cfg.optimize.throughput_batch})
    x = data.x_test[:max(batches)].float()
    if len(x) < max(batches):
        x = x.repeat((max(batches) + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:max(batches)]
    rows = []

    def add(label: str, r) -> None:
        if r.status == "ok":
            rows.append({"backend": r.backend, "model": label, "batch": r.batch, "p50_ms": r.latency_ms["p50"],
                         "p90_ms": r.latency_ms["p90"], "p99_ms": r.latency_ms["p99"], "throughput": r.throughput})

    for label, m in (("original", model), ("winner (fp32 module)", result.model)):
        for r in tn.benchmark(m, x, backends=backends, batch_sizes=batches, config=bench_cfg).results:
            add(label, r)
    if result.quantized is not None:  # the winner as it ships: its lower-precision model on its backend
        from trimnet.bench.harness import BackendSpec, measure_runner

        with result.quantized.runner() as runner:
            for batch in batches:
                add("winner", measure_runner(runner, x[:batch].numpy(), bench_cfg, BackendSpec.parse(result.best.backend)))
    else:
        rows += [{**r, "model": "winner"} for r in rows
                 if r["model"] == "winner (fp32 module)" and r["backend"] == result.best.backend]
    return rows, []


def _file_size(path: Path) -> int | None:
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "checkpoints" not in f.parts
               and "candidates" not in f.parts)


def _summary(cfg, art, prof, result, hardware, hardware_note, train_time, backends_table, _rows, stages, out, *,
             data, model) -> dict:
    import platform

    from trimnet import __version__
    from trimnet.profile import profile

    best, orig = result.best, result.original
    winner_prof = profile(result.model, torch.zeros((1, *art.in_shape)))
    # pair the MAC-carrying layers in order: fusion renumbers modules (a folded BatchNorm goes)
    orig_layers = [(f"{layer.name} {layer.type}", layer.macs) for layer in prof.layers if layer.macs]
    new_macs = [layer.macs for layer in winner_prof.layers if layer.macs]
    new_macs += [0] * (len(orig_layers) - len(new_macs))

    def at(backend: str, model: str, batch: int, key: str):
        for r in backends_table:
            if r["backend"] == backend and r["model"] == model and r["batch"] == batch:
                return r[key]
        return None

    def figures(backend: str, model: str, fallback=None) -> dict:
        """Latency p50/p99 at the target batch and throughput at the throughput batch, all from the
        benchmark stage (measured side by side); the search's own figure where the stage has none."""
        p50 = at(backend, model, b, "p50_ms")
        return {"p50_ms": p50 if p50 is not None else getattr(fallback, "latency_ms", None),
                "p99_ms": at(backend, model, b, "p99_ms") if p50 is not None else getattr(fallback, "p99_ms", None),
                "throughput": at(backend, model, tb, "throughput")}

    tgt, b, tb = cfg.optimize.target_backend, cfg.optimize.batch, cfg.optimize.throughput_batch
    model_file = "model.onnx" if (out / "best" / "model.onnx").exists() else "model.safetensors"
    original_size = _file_size(art.path / "model.safetensors")
    rows = [
        {"name": "original (fp32, PyTorch eager)", "test_accuracy": result.original_test_accuracy, "macs": prof.macs,
         "params": prof.params, "size_bytes": original_size, **figures("torch", "original")},
        {"name": f"original on {tgt} (fp32)", "test_accuracy": result.original_test_accuracy, "macs": prof.macs,
         "params": prof.params, "size_bytes": original_size, **figures(tgt, "original", orig)},
        {"name": f"winner: {best.description}", "winner": True, "test_accuracy": result.test_accuracy,
         "macs": best.macs, "params": best.params, "size_bytes": _file_size(out / "best" / model_file),
         **figures(best.backend, "winner", best)},
    ]
    # speedups are against what a user starts from: the model in PyTorch eager
    eager_ms, eager_tput = rows[0]["p50_ms"], rows[0]["throughput"]
    for row in rows:
        row["speedup"] = eager_ms / row["p50_ms"] if eager_ms and row["p50_ms"] else None
        row["throughput_speedup"] = row["throughput"] / eager_tput if eager_tput and row["throughput"] else None
    firing = _firing(result, model, data)
    return {
        "title": f"{art.meta.get('arch', 'model')} on {art.meta.get('data', {}).get('source', cfg.data.source)}",
        "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": {"trimnet": __version__, "torch": torch.__version__},
        "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
        "threads": torch.get_num_threads(),
        "target": {"backend": tgt, "batch": b, "throughput_batch": tb},
        "budget": cfg.optimize.max_accuracy_drop,
        "original": {"test_accuracy": result.original_test_accuracy, "macs": prof.macs, "params": prof.params,
                     "size_bytes": rows[0]["size_bytes"], "latency_ms": orig.latency_ms},
        "winner": {"description": best.description, "test_accuracy": result.test_accuracy, "macs": best.macs,
                   "params": best.params, "size_bytes": rows[2]["size_bytes"], "latency_ms": best.latency_ms,
                   "speedup": result.speedup, "original": best.original},
        "summary_rows": rows,
        "candidates": [c.to_dict() for c in result.candidates],
        "layers": [{"name": n, "macs_original": m, "macs_optimized": new}
                   for (n, m), new in zip(orig_layers, new_macs)],
        "activation": firing,
        "backends": backends_table,
        "hardware": hardware, "hardware_note": hardware_note, "train_time": train_time,
        "stages": stages,
        "commands": [f"trimnet run -c config.yaml --out {out}", f"trimnet eval {out / 'best'}",
                     f"trimnet bench {out / 'best'} --batch {b},{tb}", f"trimnet report {out}"],
    }


def _firing(result, model, data) -> dict:
    """How often each channel of the original fires on training samples, and which of them the
    winner's pruning removed (whatever criterion ranked them): the report's histogram."""
    record = result.prune_records.get(result.best.structure) or {}
    groups = record.get("groups", []) if isinstance(record, dict) else []
    if not groups:
        return {"firing_frequency": [], "pruned": []}
    from trimnet.optimize.stats import activation_stats

    stats = activation_stats(model, data, samples=512)
    by_source: dict = {}
    for site in stats.sites.values():
        if site.source is not None:
            by_source.setdefault(site.source, site)
    freq, pruned = [], []
    for group in groups:
        names = [group.get("name"), *group.get("layers", [])]
        site = next((by_source[n] for n in names if n in by_source), None)
        before = (group.get("channels") or [None])[0]
        if site is None or len(site.fire_rate) != before:
            continue  # heads and blocks, or a group no activation reads: nothing per channel to show
        removed = set(group.get("removed", []))
        rates = site.fire_rate.tolist()
        freq.extend(rates)
        pruned.extend(i in removed for i in range(len(rates)))
    return {"firing_frequency": freq, "pruned": pruned}


def load_pipeline_config(path: str | None, overrides: list[tuple[str, str]], *, out: str | None = None,
                         train_from: str | None = None) -> PipelineConfig:
    from trimnet.config import apply_overrides, from_dict, load_yaml, merge, to_dict

    base = to_dict(PipelineConfig())
    if path:
        base = merge(base, load_yaml(path))
    pairs = [(k, v) for k, v in (("out", out), ("train_from", train_from)) if v is not None]
    data = apply_overrides(apply_overrides(base, pairs), overrides)
    cfg = from_dict(PipelineConfig, data)
    if cfg.out is None:
        cfg.out = f"runs/{Path(cfg.data.source.split(':')[-1]).stem}-{cfg.model.name}-run"
    cfg.validate()
    return cfg



def summary_table(summary: dict) -> list[list[Any]]:
    """Rows for the printed summary: accuracy in %, size in KiB, speedups as '24.7x'."""
    def pct(v):
        return None if v is None else f"{100 * v:.2f} %"

    def times(v):
        return None if v is None else f"{v:.1f}x"

    def ms(v):
        return None if v is None else float(f"{v:.3g}")

    return [[r["name"], pct(r["test_accuracy"]), r["macs"], r["params"],
             None if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:,.0f} KiB", ms(r["p50_ms"]),
             ms(r["p99_ms"]), None if r["throughput"] is None else round(r["throughput"]), times(r["speedup"]),
             times(r.get("throughput_speedup"))] for r in summary["summary_rows"]]


SUMMARY_HEADERS = ["model", "test acc", "MACs", "params", "size", "p50 ms", "p99 ms", "samples/s", "x latency",
                   "x throughput"]

