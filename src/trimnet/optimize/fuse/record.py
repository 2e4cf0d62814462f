"""What a fusion run did: per pass, the layers it changed or left alone, and its numerical check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from torch import nn

from trimnet.optimize.fuse.base import Change, Skip


@dataclass
class NumericCheck:
    """The fused model's outputs against the model's before the pass, fp32, same inputs."""

    max_abs: float
    scale: float  # max |output| before the pass
    limit: float  # rtol * scale
    rtol: float
    inputs: list[str] = field(default_factory=list)

    @property
    def rel(self) -> float:
        return self.max_abs / self.scale if self.scale > 0 else self.max_abs

    @property
    def passed(self) -> bool:
        return self.max_abs <= self.limit

    def to_dict(self) -> dict:
        return {"max_abs": self.max_abs, "scale": self.scale, "rel": self.rel, "limit": self.limit,
                "rtol": self.rtol, "passed": self.passed, "inputs": self.inputs}


@dataclass
class PassRecord:
    name: str
    changes: list[Change]
    skipped: list[Skip]
    layers_before: dict[str, int]
    layers_after: dict[str, int]
    check: NumericCheck
    seconds: float

    def to_dict(self) -> dict:
        return {"name": self.name, "changes": [c.to_dict() for c in self.changes],
                "skipped": [s.to_dict() for s in self.skipped], "layers_before": self.layers_before,
                "layers_after": self.layers_after, "check": self.check.to_dict(), "seconds": round(self.seconds, 4)}


@dataclass
class FuseRecord:
    mode: str  # "layer spec" (the module tree was changed in place) or "torch.fx" (a traced graph)
    passes: list[PassRecord]
    layers_before: dict[str, int]
    layers_after: dict[str, int]
    params_before: int
    params_after: int
    check: NumericCheck  # the fused model against the input model, all passes together

    @property
    def changes(self) -> list[Change]:
        return [c for p in self.passes for c in p.changes]

    @property
    def skipped(self) -> list[Skip]:
        return [s for p in self.passes for s in p.skipped]

    def summary(self) -> str:
        per_pass = ", ".join(f"{p.name}: {len(p.changes)}" for p in self.passes)
        return (f"{sum(self.layers_before.values())} -> {sum(self.layers_after.values())} layers, "
                f"{self.params_before:,} -> {self.params_after:,} parameters ({per_pass})")

    def to_dict(self) -> dict:
        return {"mode": self.mode, "summary": self.summary(),
                "layers_before": self.layers_before, "layers_after": self.layers_after,
                "layer_count_before": sum(self.layers_before.values()),
                "layer_count_after": sum(self.layers_after.values()),
                "params_before": self.params_before, "params_after": self.params_after,
                "check": self.check.to_dict(), "passes": [p.to_dict() for p in self.passes]}


@dataclass
class FuseResult:
    """The fused model (a new module; the input is untouched) and what was done to it."""

    model: nn.Module
    record: FuseRecord

    def __iter__(self) -> Iterator:  # model, record = tn.fuse(model)
        return iter((self.model, self.record))

    def to_dict(self) -> dict:
        return self.record.to_dict()
