"""``summary.json``: what a run found, as ``trimnet run`` writes it and the report and the printed summary read it.

``RunSummary`` names every key; ``to_dict()`` is the JSON on disk (keys in this order, as the
report template and older runs have them) and ``from_dict()`` reads it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class RunSummary:
    title: str  # "cnn on digits"
    created: str  # "2025-01-31 12:00 UTC"
    versions: dict  # {"trimnet": ..., "torch": ...}
    machine: str
    threads: int | None  # every latency was measured with this many threads
    target: dict  # {"backend", "batch", "throughput_batch"}
    budget: float  # the accuracy the winner may lose (absolute)
    original: dict  # the original's card: test_accuracy, macs, params, size_bytes, latency_ms
    winner: dict  # the winner's card: the same, with description, speedup, original, flagged
    baseline: str  # the name of the summary row every ratio is against
    baseline_note: str
    interference: dict  # whether figures were taken on a busy machine, and the side-by-side check
    summary_rows: list[dict]  # the table: original in PyTorch, original on the target, winner
    candidates: list[dict]  # every candidate the search measured
    layers: list[dict]  # MACs per layer, original and optimized
    activation: dict  # firing frequency per channel of the original, and which were pruned
    architecture: dict  # layers with widths before and after
    layer_latency: dict  # per-layer kernel times (onnxruntime's profiler)
    training: list[dict]  # the original's per-epoch metrics
    backends: list[dict]  # the benchmark stage: every backend, model and batch
    hardware: list[dict]  # roofline estimates on this machine and catalog devices
    hardware_note: str
    train_time: list[dict]  # estimated training time per device
    stages: list[dict]  # {"name", "seconds"} per stage, in order
    commands: list[str]  # reproduce, evaluate, benchmark, rebuild the report
    metric: str = "accuracy"  # the task's metric in every test_accuracy / val_accuracy field (higher is better)
    total_seconds: float | None = None  # set once the report stage has run; absent from the JSON until then
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know, kept as read

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("total_seconds", "extra")}
        if self.total_seconds is not None:
            out["total_seconds"] = self.total_seconds
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSummary":
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


SUMMARY_HEADERS = ["model", "test acc", "MACs", "params", "size", "p50 ms", "p99 ms", "samples/s", "x latency",
                   "x throughput"]


def metric_name(metric: str) -> str:
    """How a metric is shown: accuracy as itself, a negated error (``neg_mae``) as the error (MAE)."""
    return metric[4:].upper() if metric.startswith("neg_") else metric


def format_metric(value: float | None, metric: str = "accuracy") -> str | None:
    """Accuracy in %, a negated error as the positive error, anything else as it is."""
    if value is None:
        return None
    if metric == "accuracy":
        return f"{100 * value:.2f} %"
    return f"{-value if metric.startswith('neg_') else value:.4g}"


def summary_headers(summary: dict) -> list[str]:
    metric = summary.get("metric", "accuracy")
    return SUMMARY_HEADERS if metric == "accuracy" else ["model", f"test {metric_name(metric)}", *SUMMARY_HEADERS[2:]]


def summary_table(summary: dict) -> list[list[Any]]:
    """Rows for the printed summary: accuracy in % (or the task's metric), size in KiB, speedups as '24.7x'."""
    metric = summary.get("metric", "accuracy")

    def pct(v):
        return format_metric(v, metric)

    def times(v):
        return None if v is None else f"{v:.1f}x"

    def ms(v):
        return None if v is None else float(f"{v:.3g}")

    def busy(v, r):
        return v if v is None or not r.get("flagged") else f"{v}*"

    return [[r["name"], pct(r["test_accuracy"]), r["macs"], r["params"],
             None if r["size_bytes"] is None else f"{r['size_bytes'] / 1024:,.0f} KiB", busy(ms(r["p50_ms"]), r),
             ms(r["p99_ms"]), None if r["throughput"] is None else round(r["throughput"]), times(r["speedup"]),
             times(r.get("throughput_speedup"))] for r in summary["summary_rows"]]


def summary_notes(summary: dict) -> list[str]:
    """The lines under the printed summary: the baseline, and a warning where figures were taken busy."""
    notes = [summary.get("baseline_note") or "x: against the original"]
    info = summary.get("interference") or {}
    load = info.get("load_average")
    if info.get("rows"):
        notes.append("* taken while other work competed for the cores (load "
                     f"{load[0] if load else '?'}, {info.get('threads')} threads): these figures are inflated and "
                     "noisy; run again on a quiet machine to compare with others")
    elif info.get("flagged"):
        notes.append(f"note: {info.get('candidates_flagged', 0)} of the search's timings were taken while other work "
                     f"competed for the cores (load {load[0] if load else '?'}); the choice rests on side-by-side "
                     "rounds, which the load hits alike")
    return notes
