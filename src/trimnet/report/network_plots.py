"""The report's figures about the network itself: training curves, the layers with their widths
before and after trimming, and per-layer latency on the target."""

from __future__ import annotations

import math

from trimnet.report.plots import _encode, _figure


def training_curves(rows: list[dict], metric: str = "accuracy") -> str | None:
    """Loss and the task's metric (accuracy, or e.g. MAE for regression) per epoch, training and validation."""
    rows = [r for r in rows if "epoch" in r]
    if not rows:
        return None
    negated = metric.startswith("neg_")
    shown = metric[4:].upper() if negated else metric
    plt, fig, _ = _figure()
    plt.close(fig)
    fig, (loss, acc) = plt.subplots(1, 2, figsize=(7.6, 3.0), dpi=110)
    epochs = [r["epoch"] for r in rows]
    for ax, key, title in ((loss, "loss", "loss"), (acc, metric, "accuracy (%)" if metric == "accuracy" else shown)):
        for split, style in (("train", "-"), ("val", "--")):
            ys = [r.get(f"{split}_{key}") for r in rows]
            if any(y is not None for y in ys):
                scale = 100 if key == "accuracy" else -1 if key == metric and negated else 1
                ax.plot(epochs, [None if y is None else scale * y for y in ys], style, marker=".",
                        label="training" if split == "train" else "validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    loss.set_yscale("log")
    return _encode(plt, fig)


def architecture(arch: dict) -> str | None:
    """The layers as columns of units, original above and winner below, each column's width written
    under it: input → hidden → output, as in a textbook picture of the network."""
    before, after = arch.get("original") or [], arch.get("winner") or []
    if not before:
        return None
    plt, fig, _ = _figure()
    plt.close(fig)
    n = len(before) + 1
    fig, axes = plt.subplots(2, 1, figsize=(max(6.4, 1.1 * n + 1.5), 5.4), dpi=110)
    top = max([before[0]["in"], *(layer["out"] for layer in before)])
    for ax, layers, title in ((axes[0], before, "original"), (axes[1], after or before, "after trimming")):
        widths = [layers[0]["in"], *(layer["out"] for layer in layers)]
        names = ["input", *(layer["label"] for layer in layers)]
        ref = [before[0]["in"], *(layer["out"] for layer in before)]
        for i, w in enumerate(widths):
            h = math.sqrt(w / top)  # area-like: a 4x wider layer is drawn 2x taller
            color = "#bbb" if i == 0 else "#27a" if (i < len(ref) and w < ref[i]) else "#79b"
            ax.bar(i, h, bottom=-h / 2, width=0.55, color=color, edgecolor="#333", linewidth=0.5)
            ax.text(i, -h / 2 - 0.06, f"{w:,}", ha="center", va="top", fontsize=8, weight="bold")
            if i < len(ref) and w != ref[i]:
                ax.text(i, h / 2 + 0.04, f"was {ref[i]:,}", ha="center", va="bottom", fontsize=7, color="#b33")
            if i:
                ax.annotate("", xy=(i - 0.3, 0), xytext=(i - 0.7, 0), arrowprops={"arrowstyle": "->", "color": "#666"})
        ax.set_xticks(range(len(names)), [_short(x) for x in names], fontsize=7, rotation=20, ha="right")
        ax.set_yticks([])
        ax.set_ylim(-0.75, 0.75)
        ax.set_xlim(-0.6, len(names) - 0.4)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"{title}: {sum(layer['in'] * layer['out'] for layer in layers):,} weights in these layers",
                     fontsize=9, loc="left")
    return _encode(plt, fig)


def _short(label: str, limit: int = 26) -> str:
    return label if len(label) <= limit else label[:limit - 1] + "…"


def layer_latency(info: dict) -> str | None:
    """Per-layer kernel time on the target, original and winner, as paired horizontal bars."""
    before, after = info.get("original") or [], info.get("winner") or []
    if not before:
        return None
    plt, fig, ax = _figure(7.2, max(2.6, 0.42 * max(len(before), len(after)) + 1.2))
    n = max(len(before), len(after))
    labels = []
    for i in range(n):
        a = before[i]["layer"] if i < len(before) else ""
        b = after[i]["layer"] if i < len(after) else ""
        labels.append(a if a == b or not b else f"{a}\n→ {b.split(' ', 1)[-1]}")
    ys = range(n)
    ax.barh([y - 0.2 for y in ys], [before[i]["ms"] * 1e3 if i < len(before) else 0 for i in ys], height=0.4,
            color="#bbb", label="original")
    ax.barh([y + 0.2 for y in ys], [after[i]["ms"] * 1e3 if i < len(after) else 0 for i in ys], height=0.4,
            color="#27a", label="winner")
    ax.set_yticks(list(ys), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"µs per call on {info.get('backend', 'the target')} (its profiler's kernel times)")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _encode(plt, fig)
