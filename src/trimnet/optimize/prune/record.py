"""What pruning removed: per group and per layer, in the original model's indices."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class LayerChange:
    """One module whose shape changed. ``removed`` are original output positions (or heads)."""

    name: str
    type: str
    out: tuple[int, int] | None = None  # (before, after) output channels / features
    inputs: tuple[int, int] | None = None  # (before, after) input channels / features
    removed: list[int] = field(default_factory=list)
    heads: tuple[int, int] | None = None  # SelfAttention: (before, after) heads
    removed_heads: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Only what applies: a batch norm has no inputs entry, a conv no heads."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for key, value in asdict(self).items():
            if key not in out and value not in (None, []):
                out[key] = list(value) if isinstance(value, tuple) else value
        return out


@dataclass
class GroupRecord:
    """A set of coupled channels: the layers that share them and which of them went."""

    name: str
    channels: tuple[int, int]  # (before, after)
    unit: str  # channel | head | block position
    criterion: str  # the criterion that ranked it (the fallback when the named one had nothing to read)
    layers: list[str] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)  # original channel indices, in order of removal

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d


@dataclass
class PruneRecord:
    criterion: str
    scope: str
    ratio: float | None
    target_macs: float | None
    steps: int
    macs: tuple[int, int] = (0, 0)  # (before, after), batch 1
    params: tuple[int, int] = (0, 0)
    groups: list[GroupRecord] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"group", "reason"}
    layers: dict[str, LayerChange] = field(default_factory=dict)
    accuracy: dict[str, float] = field(default_factory=dict)  # test accuracy: before, pruned, after
    history: list[dict[str, Any]] = field(default_factory=list)  # one row per step
    notes: list[str] = field(default_factory=list)

    @property
    def macs_kept(self) -> float:
        return self.macs[1] / self.macs[0] if self.macs[0] else 1.0

    @property
    def params_kept(self) -> float:
        return self.params[1] / self.params[0] if self.params[0] else 1.0

    def summary(self) -> str:
        text = (f"{self.criterion} ({self.scope}): MACs {self.macs[0]:,} -> {self.macs[1]:,} "
                f"({self.macs_kept:.1%} kept), params {self.params[0]:,} -> {self.params[1]:,} "
                f"({self.params_kept:.1%} kept)")
        if "after" in self.accuracy and "before" in self.accuracy:
            text += f", test accuracy {self.accuracy['before']:.4f} -> {self.accuracy['after']:.4f}"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "criterion": self.criterion, "scope": self.scope, "ratio": self.ratio, "target_macs": self.target_macs,
            "steps": self.steps, "macs": {"before": self.macs[0], "after": self.macs[1], "kept": self.macs_kept},
            "params": {"before": self.params[0], "after": self.params[1], "kept": self.params_kept},
            "accuracy": dict(self.accuracy), "summary": self.summary(),
            "groups": [g.to_dict() for g in self.groups], "skipped": list(self.skipped),
            "layers": [c.to_dict() for c in self.layers.values()], "history": list(self.history),
            "notes": list(self.notes),
        }
