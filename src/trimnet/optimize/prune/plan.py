"""How many units each group loses, and which: per-layer or global ranking, floors, rounding,
and the search for a MAC target.

Counts are in *units* (channels; heads for attention; block positions for grouped convs).
Kept widths are rounded to a multiple of ``round_to`` channels where the layer is at least
that wide, and never go below one rounding step nor ``min_channels``: a layer is never
pruned to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from trimnet.models import layers as L
from trimnet.optimize.prune.graph import Group, is_depthwise


@dataclass
class Scored:
    group: Group
    scores: torch.Tensor  # one per unit, higher: keep
    criterion: str  # the criterion that gave them
    comparable: bool  # the scores mean the same in every layer
    original: int  # units at the start (before any step)


def quantum(group: Group, round_to: int) -> int:
    """Units per rounding step: kept channels stay multiples of ``round_to`` (when wide enough)."""
    q = round_to // math.gcd(round_to, group.unit)
    return q if group.units >= q else 1


def floor_units(group: Group, round_to: int, min_channels: int) -> int:
    return min(group.units, max(quantum(group, round_to), math.ceil(min_channels / group.unit)))


def keep_units(group: Group, target_units: float, round_to: int, min_channels: int) -> int:
    """``target_units`` rounded to the nearest rounding step, within [floor, current]."""
    q = quantum(group, round_to)
    keep = q * math.floor(target_units / q + 0.5)
    return max(floor_units(group, round_to, min_channels), min(group.units, keep))


def lowest(scores: torch.Tensor, n: int) -> torch.Tensor:
    """The ``n`` lowest-scored units (ties: the lower index first)."""
    if n <= 0:
        return torch.zeros(0, dtype=torch.long)
    order = sorted(range(len(scores)), key=lambda i: (float(scores[i]), i))
    return torch.as_tensor(order[:n], dtype=torch.long)


def plan(scored: list[Scored], share: float, scope: str, round_to: int, min_channels: int) -> dict[str, torch.Tensor]:
    """Units to remove per group so that ``share`` of the original units are gone."""
    if scope == "per_layer":
        return {s.group.name: _per_layer(s, share, round_to, min_channels) for s in scored}
    # Global: scores that mean the same everywhere compete as they are; others are first
    # divided by their group's mean. Groups whose criterion fell back to a weight norm while
    # others have comparable scores are pruned per layer at the same share.
    any_comparable = any(s.comparable for s in scored)
    fixed = [s for s in scored if any_comparable and not s.comparable]
    pool = [s for s in scored if s not in fixed]
    out = {s.group.name: _per_layer(s, share, round_to, min_channels) for s in fixed}
    out.update(_global(pool, share, round_to, min_channels))
    return out


def _per_layer(s: Scored, share: float, round_to: int, min_channels: int) -> torch.Tensor:
    keep = keep_units(s.group, s.original * (1.0 - share), round_to, min_channels)
    return lowest(s.scores, s.group.units - keep)


def _global(pool: list[Scored], share: float, round_to: int, min_channels: int) -> dict[str, torch.Tensor]:
    if not pool:
        return {}
    total = sum(s.original * s.group.unit for s in pool)
    gone = sum((s.original - s.group.units) * s.group.unit for s in pool)
    budget = share * total - gone
    candidates = []
    for s in pool:
        values = s.scores if s.comparable else s.scores / max(float(s.scores.mean()), 1e-12)
        candidates += [(float(v), s.group.name, i) for i, v in enumerate(values)]
    candidates.sort()
    room = {s.group.name: s.group.units - floor_units(s.group, round_to, min_channels) for s in pool}
    unit = {s.group.name: s.group.unit for s in pool}
    taken = {s.group.name: 0 for s in pool}
    for _, name, _ in candidates:
        if budget <= 0:
            break
        if taken[name] < room[name]:
            taken[name] += 1
            budget -= unit[name]
    out = {}
    for s in pool:
        keep = keep_units(s.group, s.group.units - taken[s.group.name], round_to, min_channels)
        out[s.group.name] = lowest(s.scores, s.group.units - keep)
    return out


class MacEstimate:
    """MACs of the model after a removal plan, from one profile of the current model.

    A conv or linear layer's MACs scale with its kept outputs times its kept inputs (a
    depthwise conv's with its kept channels), attention products with the kept heads;
    everything else is left as it is.
    """

    def __init__(self, model: nn.Module, groups: list[Group], layer_macs: dict[str, int], total: int):
        self.total = total
        modules = dict(model.named_modules())
        attention_q = {id(m.q): name for name, m in modules.items() if isinstance(m, L.SelfAttention)}
        # (macs, [(group, item root, size, role)]) for each module whose MACs change with widths
        self.terms: list[tuple[int, list[tuple[str, torch.Tensor, int]]]] = []
        by_module: dict[str, list[tuple[str, torch.Tensor, int, str]]] = {}
        for g in groups:
            for item in g.items:
                if item.role in ("out", "in") and isinstance(item.module, nn.Module):
                    size = _width(item.module, item.role)
                    if size:
                        by_module.setdefault(item.name, []).append((g.name, item.root, size, item.role))
                    if item.role == "out" and id(item.module) in attention_q:
                        by_module.setdefault(attention_q[id(item.module)], []).append(
                            (g.name, item.root, item.module.out_features, "out"))
        self.fixed = total
        for name, entries in by_module.items():
            macs = layer_macs.get(name, 0)
            if not macs:
                continue
            m = modules[name]
            if isinstance(m, nn.Conv2d) and is_depthwise(m):
                entries = [e for e in entries if e[3] == "out"]
            self.terms.append((macs, [(g, root, size) for g, root, size, _ in entries]))
            self.fixed -= macs

    def __call__(self, removal: dict[str, torch.Tensor]) -> float:
        """``removal``: group name -> removed channel mask (bool, current channels)."""
        est = float(self.fixed)
        for macs, factors in self.terms:
            f = 1.0
            for group, root, size in factors:
                mask = removal.get(group)
                if mask is not None:
                    f *= 1.0 - float(mask[root].sum()) / size
            est += macs * f
        return est


def _width(m: nn.Module, role: str) -> int | None:
    if isinstance(m, nn.Conv2d):
        return m.out_channels if role == "out" else m.in_channels
    if isinstance(m, nn.Linear):
        return m.out_features if role == "out" else m.in_features
    return None


def channel_masks(scored: list[Scored], removal: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = {}
    for s in scored:
        units = removal.get(s.group.name)
        mask = torch.zeros(s.group.channels, dtype=torch.bool)
        if units is not None and len(units):
            mask[s.group.channels_of(units)] = True
        out[s.group.name] = mask
    return out


def search_share(scored: list[Scored], estimate: MacEstimate, target: float, scope: str, round_to: int,
                 min_channels: int, lo: float = 0.0) -> tuple[float, float]:
    """The smallest channel share whose plan keeps at most ``target`` MACs; (share, estimated MACs).

    If even the largest share (every layer at its floor) keeps more, returns that share and
    its estimate, which the caller reports as unreachable.
    """
    def macs(share: float) -> float:
        return estimate(channel_masks(scored, plan(scored, share, scope, round_to, min_channels)))

    hi = 1.0
    at_hi = macs(hi)
    if at_hi > target:
        return hi, at_hi
    if macs(lo) <= target:
        return lo, macs(lo)
    for _ in range(24):
        mid = (lo + hi) / 2
        if macs(mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi, macs(hi)
