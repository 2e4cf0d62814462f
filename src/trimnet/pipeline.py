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
from typing import TYPE_CHECKING, Any, Callable, Iterator

import torch

from trimnet.config import CONFIG_VERSION, DataConfig, ModelConfig, RunConfig, TrainConfig
from trimnet.errors import TrimnetError
from trimnet.models.checked import create_checked
from trimnet.optimize.search import OptimizeConfig

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.artifact import Artifact
    from trimnet.data import Dataset
    from trimnet.optimize.result import OptimizeResult
    from trimnet.profile import Profile
    from trimnet.report.summary import RunSummary

log = logging.getLogger("trimnet.run")
CATALOG_DEVICES = ["t4", "l4", "a100-80gb", "h100-sxm"]


@dataclass
class MeasureConfig:
    devices: list[str] = field(default_factory=lambda: list(CATALOG_DEVICES))  # catalog devices to estimate on
    backends: list[str] = field(default_factory=list)  # backends original and winner are timed on; empty: all installed


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


# a streamed source is trained from disk; the later stages search on at most this many samples
# per split, read into memory (drawn with the data seed)
SEARCH_SAMPLES = {"train": 20_000, "val": 5_000, "test": 10_000}


def _searchable(data: Any, say: Callable[[str], None]) -> Any:
    """The Dataset the search runs on: ``data`` itself, or a bounded in-memory subset of a streamed source."""
    from trimnet.data.stream import StreamingDataset, materialize

    if not isinstance(data, StreamingDataset):
        return data
    sizes = {s: len(d) for s, d in data.splits.items()}
    say("    streamed source: the search reads " + ", ".join(
        f"{min(n, SEARCH_SAMPLES[s]):,} of {n:,} {s}" for s, n in sizes.items()) + " samples into memory")
    return materialize(data, workers=data.workers, limits=SEARCH_SAMPLES, seed=int(data.info.get("seed", 0)))


@dataclass
class PipelineResult:
    out: Path
    summary: dict
    report: Path | None


@dataclass
class _Trained:
    """What the train and profile stages hand on."""

    art: "Artifact"  # the original, as trained (or as found in the run directory)
    data: "Dataset"
    profile: "Profile"  # the original's, at batch 1


@dataclass
class _Measured:
    """What the hardware estimate and benchmark stages hand on."""

    hardware: list[dict]  # roofline estimates, this machine and catalog devices
    hardware_note: str
    train_time: list[dict]
    backends: list[dict]  # original and winner timed on every backend


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
    from trimnet.optimize.result import save_winner
    from trimnet.optimize.search import optimize

    cfg.validate()
    say = say or log.info
    out = Path(cfg.out or "runs/run")
    out.mkdir(parents=True, exist_ok=True)
    from trimnet.config import dump_yaml

    dump_yaml(cfg, out / "config.yaml")  # the resolved config: `trimnet run -c out/config.yaml` repeats this run
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
            model = create_checked(cfg.model.name, data.in_shape, data.num_classes, **cfg.model.options)
            resume = (source / "checkpoints" / "last.pt").exists()
            tn.train(model, data, cfg.train, source, resume=resume, run_config=cfg.run_config())
            art = load_artifact(source, rebuild=True)
        data = _searchable(data, say)
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
        save_winner(result, art, best_dir)
        say(f"    winner written to {best_dir}")

    with stage("benchmark"):
        from trimnet.optimize.final import confirm

        # "never slower than the input", checked again: the winner as it ships against the original,
        # side by side on the target; if it loses here, the original is what the run hands back
        check = confirm(result, seconds=max(1.0, 4 * cfg.optimize.bench_time_s))
        if check["kept_original"]:
            say(f"    the winner was slower than the original when timed again ({check['winner_ms']:.4f} against "
                f"{check['original_ms']:.4f} ms): the original is kept")
            save_winner(result, art, best_dir)
        elif check["rounds"]:
            say(f"    confirmed side by side: {check['winner_ms']:.4f} ms against {check['original_ms']:.4f} ms for "
                f"the original on {cfg.optimize.target_backend}" + (" (machine busy)" if check["busy"] else ""))
        measured = _Measured(hardware, hardware_note, train_time, _benchmark(model, result, data, cfg))

    summary = _summary(cfg, out, _Trained(art, data, prof), result, measured, stage.times)
    from trimnet.artifact import atomic_write
    from trimnet.report.html import dumps

    atomic_write(out / "summary.json", dumps(summary.to_dict()))
    report = None
    with stage("report"):
        try:
            from trimnet.report import build_report

            report = build_report(out)
        except TrimnetError as why:  # the report extra is optional; the run's results stand
            say(f"    no report: {why}")
    summary.stages = stage.times
    summary.total_seconds = time.perf_counter() - started
    atomic_write(out / "summary.json", dumps(summary.to_dict()))
    if report is not None:
        from trimnet.report import build_report

        build_report(out)  # again, now with the report stage's own time
    write_json(out / "optimize.json", result.to_dict())
    return PipelineResult(out=out, summary=summary.to_dict(), report=report)


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
    note = ("Roofline estimates from the profiler's per-layer FLOPs and bytes; catalog devices by efficiency curves "
            f"fitted to published measurements (see docs/hardware.md). Training: {cfg.train.epochs} epochs of {samples} samples. "
            + " ".join(notes))
    return rows, times, note


def _human(seconds: float) -> str:
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60), ("s", 1), ("ms", 1e-3)):
        if seconds >= size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds * 1e6:.3g} µs"


def _benchmark(model, result, data, cfg: PipelineConfig) -> list[dict]:
    """Original and winner (fp32 PyTorch module) on every installed backend, batch 1 and the throughput batch."""
    import trimnet as tn
    from trimnet.bench.config import BenchConfig
    from trimnet.runtime import list_backends

    # PyTorch first: another runtime's idle worker threads in this process can slow its OpenMP pool
    backends = cfg.measure.backends or sorted((b for b in list_backends() if not b.endswith("cuda")),
                                              key=lambda b: not b.startswith("torch"))
    bench_cfg = BenchConfig(min_time_s=0.5, max_time_s=2.0, warmup_max_s=2.0, threads=result.threads)
    batches = sorted({cfg.optimize.batch, cfg.optimize.throughput_batch})
    x = data.x_test[:max(batches)].float()
    if len(x) < max(batches):
        x = x.repeat((max(batches) + len(x) - 1) // len(x), *[1] * (x.dim() - 1))[:max(batches)]
    rows = []

    def add(label: str, r) -> None:
        if r.status == "ok":
            rows.append({"backend": r.backend, "model": label, "batch": r.batch, "p50_ms": r.latency_ms["p50"],
                         "p90_ms": r.latency_ms["p90"], "p99_ms": r.latency_ms["p99"], "throughput": r.throughput,
                         "flagged": r.flagged, "interference": r.interference})

    for label, m in (("original", model), ("winner (fp32 module)", result.model)):
        for r in tn.benchmark(m, x, backends=backends, batch_sizes=batches, config=bench_cfg).results:
            add(label, r)
    if result.quantized is not None:  # the winner as it ships: its lower-precision model on its backend
        from trimnet.bench.harness import BackendSpec, measure_runner

        with result.quantized.runner(result.threads) as runner:
            for batch in batches:
                add("winner", measure_runner(runner, x[:batch].numpy(), bench_cfg, BackendSpec.parse(result.best.backend),
                                             result.threads))
    else:
        rows += [{**r, "model": "winner"} for r in rows
                 if r["model"] == "winner (fp32 module)" and r["backend"] == result.best.backend]
    return rows


def _file_size(path: Path) -> int | None:
    if not path.exists():
        return None
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and "checkpoints" not in f.parts
               and "candidates" not in f.parts)


def _summary(cfg: PipelineConfig, out: Path, trained: _Trained, result: "OptimizeResult", measured: _Measured,
             stages: list[dict]) -> "RunSummary":
    """What the run found, as summary.json has it."""
    import platform

    from trimnet import __version__
    from trimnet.report.architecture import layers_with_widths
    from trimnet.report.summary import RunSummary

    art, prof, model, best = trained.art, trained.profile, trained.art.model, result.best
    tgt, b, tb = cfg.optimize.target_backend, cfg.optimize.batch, cfg.optimize.throughput_batch
    rows = _summary_rows(cfg, out, trained, result, measured.backends)
    arch_before, arch_after = layers_with_widths(model), layers_with_widths(result.model)
    paired = bool((result.confirmation or {}).get("rounds"))
    return RunSummary(
        metric=(art.meta.get("task") or {}).get("metric", "accuracy"),
        title=f"{art.meta.get('arch', 'model')} on {art.meta.get('data', {}).get('source', cfg.data.source)}",
        created=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        versions={"trimnet": __version__, "torch": torch.__version__},
        machine=f"{platform.machine()}, {result.threads} threads",
        threads=result.threads,
        target={"backend": tgt, "batch": b, "throughput_batch": tb},
        budget=cfg.optimize.max_accuracy_drop,
        original={"test_accuracy": result.original_test_accuracy, "macs": prof.macs, "params": prof.params,
                  "size_bytes": rows[0]["size_bytes"], "latency_ms": rows[1]["p50_ms"]},
        winner={"description": best.description, "test_accuracy": result.test_accuracy, "macs": best.macs,
                "params": best.params, "size_bytes": rows[2]["size_bytes"], "latency_ms": rows[2]["p50_ms"],
                "speedup": rows[2]["speedup"], "original": best.original, "flagged": rows[2]["flagged"]},
        baseline=rows[1]["name"],
        baseline_note=(f"x: against the original on {tgt} (fp32); latency at batch {b}, throughput at batch {tb}"
                       + (", original and winner timed side by side" if paired else "")),
        interference=_interference(rows, result),
        summary_rows=rows,
        candidates=[c.to_dict() for c in result.candidates],
        layers=_layers(trained, result, arch_before),
        activation=_firing(result, model, trained.data),
        architecture={"original": arch_before, "winner": arch_after,
                      "in_shape": list(art.in_shape), "classes": len(art.class_names or []) or None},
        layer_latency=_layer_latency(model, result, art, tgt),
        training=_training_curves(art.path),
        backends=measured.backends,
        hardware=measured.hardware, hardware_note=measured.hardware_note, train_time=measured.train_time,
        stages=stages,
        commands=[f"trimnet run -c {out / 'config.yaml'}", f"trimnet eval {out / 'best'}",
                  f"trimnet bench {out / 'best'} --batch {b},{tb}", f"trimnet report {out}"],
    )


def _summary_rows(cfg: PipelineConfig, out: Path, trained: _Trained, result: "OptimizeResult",
                  backends: list[dict]) -> list[dict]:
    """The summary table: the original in PyTorch, the original on the target (the baseline), the winner."""
    prof, best = trained.profile, result.best
    tgt, b, tb = cfg.optimize.target_backend, cfg.optimize.batch, cfg.optimize.throughput_batch
    check = result.confirmation or {}
    paired = bool(check.get("rounds"))

    def at(backend: str, model: str, batch: int, key: str):
        for r in backends:
            if r["backend"] == backend and r["model"] == model and r["batch"] == batch:
                return r.get(key)
        return None

    def figures(backend: str, model: str, paired_ms=None) -> dict:
        """Latency p50/p99 at the target batch and throughput at the throughput batch from the benchmark
        stage; ``paired_ms``: the p50 of the side-by-side check of winner and original, where there is one."""
        p50 = at(backend, model, b, "p50_ms")
        flagged = bool(at(backend, model, b, "flagged") or at(backend, model, tb, "flagged"))
        if paired_ms is not None:
            p50, flagged = paired_ms, flagged or bool(check.get("busy"))
        return {"p50_ms": p50, "p99_ms": at(backend, model, b, "p99_ms"),
                "throughput": at(backend, model, tb, "throughput"), "flagged": flagged}

    model_file = "model.onnx" if (out / "best" / "model.onnx").exists() else "model.safetensors"
    original_size = _file_size(trained.art.path / "model.safetensors")
    rows = [
        {"name": "original (fp32, PyTorch eager)", "test_accuracy": result.original_test_accuracy, "macs": prof.macs,
         "params": prof.params, "size_bytes": original_size, **figures("torch", "original")},
        {"name": f"original on {tgt} (fp32)", "baseline": True, "test_accuracy": result.original_test_accuracy,
         "macs": prof.macs, "params": prof.params, "size_bytes": original_size,
         **figures(tgt, "original", check.get("original_ms") if paired else None)},
        {"name": f"winner: {best.description}", "winner": True, "test_accuracy": result.test_accuracy,
         "macs": best.macs, "params": best.params, "size_bytes": _file_size(out / "best" / model_file),
         **figures(best.backend, "winner", check.get("winner_ms") if paired else None)},
    ]
    if best.original:  # the original kept: the same model as the baseline, so the baseline's figures (1.0x)
        rows[2].update({k: rows[1][k] for k in ("p50_ms", "p99_ms", "throughput", "flagged")})
    # one baseline for every ratio: the original on the target runtime, the model the search started from
    base_ms, base_tput = rows[1]["p50_ms"], rows[1]["throughput"]
    for row in rows:
        row["speedup"] = base_ms / row["p50_ms"] if base_ms and row["p50_ms"] else None
        row["throughput_speedup"] = row["throughput"] / base_tput if base_tput and row["throughput"] else None
    return rows


def _interference(rows: list[dict], result: "OptimizeResult") -> dict:
    """Which figures were taken while other work competed for the cores, and the last side-by-side check."""
    from trimnet.bench.env import load_average

    flagged = [r["name"] for r in rows if r["flagged"]]
    return {
        "flagged": bool(flagged) or result.flagged, "rows": flagged, "threads": result.threads,
        "confirmation": result.confirmation or {}, "load_average": load_average(),
        "candidates_flagged": sum(1 for c in result.candidates if c.flagged),
    }


def _layers(trained: _Trained, result: "OptimizeResult", arch_before: list[dict]) -> list[dict]:
    """MACs per MAC-carrying layer, original and winner, paired in order: fusion renumbers modules (a
    folded BatchNorm goes)."""
    from trimnet.profile import profile

    winner_prof = profile(result.model, torch.zeros((1, *trained.art.in_shape)))
    labels = {row["name"]: row["label"] for row in arch_before}
    orig_layers = [(labels.get(layer.name, f"{layer.name} {layer.type}"), layer.macs)
                   for layer in trained.profile.layers if layer.macs]
    new_macs = [layer.macs for layer in winner_prof.layers if layer.macs]
    new_macs += [0] * (len(orig_layers) - len(new_macs))
    return [{"name": n, "macs_original": m, "macs_optimized": new} for (n, m), new in zip(orig_layers, new_macs)]


def _layer_latency(model, result, art, backend: str) -> dict:
    """Per-layer kernel time of original and winner on onnxruntime (its profiler), when that is the target."""
    if backend != "onnxruntime":
        return {"backend": backend, "note": f"per-layer times come from onnxruntime's profiler; the target is {backend}"}
    from trimnet.bench.layers import layer_latency
    from trimnet.report.architecture import group_latency

    example = torch.zeros((1, *art.in_shape))
    try:
        before = group_latency(model, layer_latency(model, example, threads=result.threads or 1))
        after = group_latency(result.model, layer_latency(result.model, example, threads=result.threads or 1))
    except TrimnetError as why:
        return {"backend": backend, "note": str(why)}
    return {"backend": backend, "original": before, "winner": after,
            "note": "fp32 module of the winner" if result.quantized is not None else ""}


def _training_curves(run: Path) -> list[dict]:
    """The original's per-epoch metrics (metrics.jsonl), for the report's training curves."""
    import json

    path = Path(run) / "metrics.jsonl"
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut short by an interruption
    return rows


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
