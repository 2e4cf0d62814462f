"""The report's figures: matplotlib, rendered to PNG and embedded as data URIs (opens offline)."""

from __future__ import annotations

import base64
import io
from typing import Any


def _figure(width: float = 6.4, height: float = 3.8):
    import matplotlib

    matplotlib.use("Agg")  # no display; must be chosen before pyplot is imported
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, height), dpi=110)
    return plt, fig, ax


def _encode(plt, fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def accuracy_vs(candidates: list[dict], x_key: str, x_label: str, log_x: bool = False,
                metric: str = "accuracy") -> str | None:
    """Validation metric against ``x_key``: accuracy in %, any other metric as it is (higher is better)."""
    from trimnet.optimize.select import pareto_front  # here: importing trimnet.optimize imports torch

    rows = [c for c in candidates if c.get(x_key) is not None and c.get("val_accuracy") is not None]
    if not rows:
        return None
    scale = 100 if metric == "accuracy" else 1
    ys = [scale * c["val_accuracy"] for c in rows]
    if max(ys) - min(ys) < 1e-9:  # a flat line says nothing: compare the candidates on x alone
        return _same_accuracy(rows, x_key, x_label, ys[0], log_x)
    plt, fig, ax = _figure()
    xs = [c[x_key] for c in rows]
    kinds = [_kind(c) for c in rows]
    for kind, color, label in (("within", "#2a7", "within the accuracy budget"), ("over", "#bbb", "over the budget"),
                               ("original", "#333", "the original")):
        pts = [(x, y) for x, y, k in zip(xs, ys, kinds) if k == kind]
        if pts:
            ax.scatter(*zip(*pts), c=color, s=28, zorder=3, label=label)
    front = pareto_front(list(zip(xs, ys)))
    ax.plot([xs[i] for i in front], [ys[i] for i in front], "-", color="#27a", zorder=2, label="Pareto front")
    for c, x, y in zip(rows, xs, ys):
        if c.get("winner") or c.get("original"):
            ax.annotate("winner" if c.get("winner") else "original", (x, y), textcoords="offset points",
                        xytext=(6, 6), fontsize=8, weight="bold")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(x_label)
    low, high = min(ys), max(ys)
    if metric == "accuracy":
        ax.set_ylabel("validation accuracy (%)")
        pad = max((high - low) * 0.1, 0.5)
        ax.set_ylim(low - pad * (3 if high - low < 1e-9 else 1), min(high + pad, 100.5))  # no axis past 100 %
    else:
        ax.set_ylabel(f"validation {metric} (higher is better)")
        pad = (high - low) * 0.1
        ax.set_ylim(low - pad, high + pad)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return _encode(plt, fig)


def _kind(c: dict) -> str:
    return "original" if c.get("original") else "within" if c.get("accepted") else "over"


COLORS = {"within": "#2a7", "over": "#bbb", "original": "#333"}


def _same_accuracy(rows: list[dict], x_key: str, x_label: str, accuracy: float, log_x: bool) -> str:
    """Every candidate at one accuracy: one labelled bar each, sorted by ``x_key``."""
    rows = sorted(rows, key=lambda c: c[x_key])
    plt, fig, ax = _figure(7.2, max(2.6, 0.3 * len(rows) + 1.2))
    ys = range(len(rows))
    ax.barh(list(ys), [c[x_key] for c in rows], color=[COLORS[_kind(c)] for c in rows], height=0.6)
    names = [("★ " if c.get("winner") else "") + (c.get("description") or c.get("name", "")) for c in rows]
    ax.set_yticks(list(ys), [n if len(n) <= 48 else n[:47] + "…" for n in names], fontsize=7)
    ax.invert_yaxis()
    # bars from zero on a linear axis: close values stay apart and the tick labels do not collide
    ax.set_xlabel(x_label.replace(", log", "").replace(" (log)", ""))
    ax.set_title(f"every candidate has the same validation accuracy ({accuracy:.2f} %)", fontsize=9, loc="left")
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLORS[k]) for k in ("within", "over", "original")]
    ax.legend(handles, ["within the accuracy budget", "over the budget", "the original"], fontsize=7, ncol=3,
              loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    ax.grid(axis="x", alpha=0.3)
    return _encode(plt, fig)


def layer_macs(layers: list[dict]) -> str | None:
    if not layers:
        return None
    plt, fig, ax = _figure(7.2, max(2.5, 0.28 * len(layers) + 1))
    names = [layer["name"] for layer in layers]
    y = range(len(layers))
    ax.barh([i + 0.2 for i in y], [layer.get("macs_original", 0) / 1e6 for layer in layers], height=0.4,
            label="original", color="#bbb")
    ax.barh([i - 0.2 for i in y], [layer.get("macs_optimized", 0) / 1e6 for layer in layers], height=0.4,
            label="optimized", color="#27a")
    ax.set_yticks(list(y), names, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("MMACs per sample")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return _encode(plt, fig)


def firing_histogram(activation: dict) -> str | None:
    freq = activation.get("firing_frequency") or []
    if not freq:
        return None
    pruned = activation.get("pruned") or [False] * len(freq)
    plt, fig, ax = _figure()
    kept_f = [f for f, p in zip(freq, pruned) if not p]
    pruned_f = [f for f, p in zip(freq, pruned) if p]
    bins = [i / 20 for i in range(21)]
    ax.hist([kept_f, pruned_f], bins=bins, stacked=True, color=["#27a", "#d54"], label=["kept", "pruned"])
    ax.set_xlabel("firing frequency (share of inputs on which the channel is active)")
    ax.set_ylabel("channels")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(plt, fig)


def latency_by_backend(rows: list[dict]) -> str | None:
    """p50 bars with p90 and p99 marks, per backend and model, at each batch size (horizontal:
    the labels are read on the left, never on top of each other)."""
    rows = [r for r in rows if r.get("p50_ms")]
    if not rows:
        return None
    batches = sorted({r["batch"] for r in rows})
    plt, fig, _ = _figure()
    plt.close(fig)
    per = max(len([r for r in rows if r["batch"] == b]) for b in batches)
    fig, axes = plt.subplots(len(batches), 1, figsize=(7.2, (0.32 * per + 1.1) * len(batches)), dpi=110,
                             squeeze=False)
    for ax, batch in zip(axes[:, 0], batches):
        sel = [r for r in rows if r["batch"] == batch]
        labels = [f"{r['model']} · {r['backend']}" + (" *" if r.get("flagged") else "") for r in sel]
        ys = range(len(sel))
        ax.barh(list(ys), [r["p50_ms"] for r in sel], height=0.6,
                color=["#27a" if "winner" in r["model"] else "#bbb" for r in sel])
        ax.scatter([r["p90_ms"] for r in sel], list(ys), marker="|", s=120, color="#333", label="p90", zorder=3)
        ax.scatter([r["p99_ms"] for r in sel], list(ys), marker="x", s=20, color="#d54", label="p99", zorder=3)
        ax.set_yticks(list(ys), labels, fontsize=7)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel(f"ms per batch of {batch} (log)")
        ax.grid(axis="x", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return _encode(plt, fig)


def all_figures(summary: dict[str, Any]) -> dict[str, str | None]:
    from trimnet.report import network_plots

    candidates = summary.get("candidates", [])
    metric = summary.get("metric", "accuracy")
    return {
        "accuracy_vs_latency": accuracy_vs(candidates, "latency_ms", "latency on the target (ms, log)", log_x=True,
                                           metric=metric),
        "accuracy_vs_macs": accuracy_vs(candidates, "macs", "MACs per sample (log)", log_x=True, metric=metric),
        "layer_macs": layer_macs(summary.get("layers", [])),
        "firing": firing_histogram(summary.get("activation", {})),
        "latency": latency_by_backend(summary.get("backends", [])),
        "training": network_plots.training_curves(summary.get("training", []), metric),
        "architecture": network_plots.architecture(summary.get("architecture", {})),
        "layer_latency": network_plots.layer_latency(summary.get("layer_latency", {})),
    }
