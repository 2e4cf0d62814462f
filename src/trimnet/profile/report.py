"""A ``Profile`` as a plain-text table or a JSON-able dict (keys documented in docs/profiler.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trimnet.profile.memory import format_bytes

if TYPE_CHECKING:
    from trimnet.profile.result import Profile

COLUMNS = ("layer", "type", "output", "params", "MACs", "FLOPs", "weights", "activations", "FLOP/B")


def human(n: float) -> str:
    """1234567 -> '1.23 M'."""
    for unit, scale in (("E", 1e18), ("P", 1e15), ("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f}" if float(n).is_integer() else f"{n:.2f}"


def shape_text(shape: tuple[int, ...] | None) -> str:
    return "x".join(str(d) for d in shape) if shape else "-"


def layer_rows(prof: Profile) -> list[tuple[str, ...]]:
    rows = []
    for layer in prof.layers:
        rows.append((
            layer.name or "(model)",
            layer.type,
            shape_text(layer.output_shape),
            human(layer.params) if layer.params else "-",
            human(layer.macs) if layer.macs else "-",
            human(layer.flops) if layer.flops else "-",
            format_bytes(layer.weight_bytes) if layer.weight_bytes else "-",
            format_bytes(layer.activation_bytes) if layer.activation_bytes else "-",
            f"{layer.intensity:.1f}" if layer.bytes else "-",
        ))
    return rows


def summary_lines(prof: Profile) -> list[str]:
    per = prof.per_sample()
    shapes = ", ".join(shape_text(s) for s in prof.inputs)
    mode = "training" if prof.training else "inference"
    lines = [
        f"model {prof.model}, input {shapes}, {mode}, {prof.tensors} tensors",
        f"params      {prof.params:,} ({format_bytes(prof.total_param_bytes)}"
        + "".join(f", {k} {format_bytes(v)}" for k, v in prof.param_bytes.items() if len(prof.param_bytes) > 1)
        + ")",
        f"MACs        {prof.macs:,} ({human(prof.macs)}; {human(per['macs'])} per sample)",
        f"FLOPs       {prof.flops:,} ({human(prof.flops)}; {human(per['flops'])} per sample)",
    ]
    if prof.training:
        lines += [
            f"backward    {prof.backward_flops:,} FLOPs ({human(per['backward_flops'])} per sample)",
            f"total       {prof.total_flops:,} FLOPs ({human(per['total_flops'])} per sample)",
        ]
    lines.append(f"peak activations {format_bytes(prof.peak_activation_bytes)} at batch {prof.batch}")
    if prof.uncounted:
        ops = ", ".join(f"{k} x{v}" for k, v in sorted(prof.uncounted.items()))
        lines.append(f"uncounted operators (no formula): {ops}")
    lines += [f"note: {n}" for n in prof.notes]
    return lines


def render(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    left = {0, 1, 2}

    def line(cells) -> str:
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)]).rstrip()


def table(prof: Profile, max_rows: int | None = None) -> str:
    rows = layer_rows(prof)
    hidden = 0
    if max_rows is not None and len(rows) > max_rows:
        hidden = len(rows) - max_rows
        rows = rows[:max_rows]
    text = render(COLUMNS, rows)
    if hidden:
        text += f"\n... {hidden} more layers"
    return text + "\n\n" + "\n".join(summary_lines(prof))


def to_dict(prof: Profile) -> dict[str, Any]:
    return {
        "model": prof.model,
        "inputs": [list(s) for s in prof.inputs],
        "outputs": [list(s) for s in prof.outputs],
        "batch": prof.batch,
        "mode": "training" if prof.training else "inference",
        "tensors": prof.tensors,
        "params": prof.params,
        "trainable_params": prof.trainable_params,
        "macs": prof.macs,
        "flops": prof.flops,
        "backward_macs": prof.backward_macs,
        "backward_flops": prof.backward_flops,
        "total_flops": prof.total_flops,
        "per_sample": prof.per_sample(),
        "memory": {
            "param_bytes": dict(prof.param_bytes),
            "buffer_bytes": dict(prof.buffer_bytes),
            "input_bytes": prof.input_bytes,
            "output_bytes": prof.output_bytes,
            "peak_activation_bytes": prof.peak_activation_bytes,
        },
        "layers": [layer.to_dict() for layer in prof.layers],
        "operators": {name: op.to_dict() for name, op in prof.by_operator().items()},
        "uncounted": dict(prof.uncounted),
        "notes": list(prof.notes),
    }
