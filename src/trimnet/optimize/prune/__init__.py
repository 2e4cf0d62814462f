"""Structured pruning: remove the channels, neurons and attention heads that matter least.

``prune(model, data, PruneConfig(criterion="apoz", ratio=0.5))`` returns a ``PruneResult``:
the smaller model (its modules really are narrower, so ``to_spec`` records the new widths)
and a ``PruneRecord`` of what went, per group and per layer. See docs/pruning.md.
"""

from trimnet.optimize.finetune import FinetuneConfig
from trimnet.optimize.prune.api import PruneResult, prune
from trimnet.optimize.prune.config import PruneConfig
from trimnet.optimize.prune.record import GroupRecord, LayerChange, PruneRecord

__all__ = ["FinetuneConfig", "GroupRecord", "LayerChange", "PruneConfig", "PruneRecord", "PruneResult", "prune"]
