"""Where a training run is, as a checkpoint holds it: plain values only, read back with weights_only."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoopState:
    """Where a run is: saved in every checkpoint (plain values only, read back with weights_only)."""

    epoch: int = 0
    step: int = 0  # optimizer steps done in the current epoch
    loss_sum: float = 0.0  # since the epoch began, summed over samples (and ranks)
    score_sum: float = 0.0  # the task's metric, weighted by samples
    seen: int = 0
    history: list = field(default_factory=list)
    best_val: float | None = None  # the best validation metric so far (higher is better)
    best_epoch: int = -1
    since_best: int = 0
    stopped: bool = False  # early stopping

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "LoopState":
        d = dict(d)
        if "correct" in d:  # a checkpoint written before tasks: accuracy counted as hits
            d["score_sum"] = float(d.pop("correct"))
        if d.get("best_epoch", -1) < 0:
            d["best_val"] = None
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
