"""Pruning a transformer encoder by whole attention heads and FFN neurons.

The model's family (``models.families``) says where each block's heads and FFN neurons
are. Every block keeps the same number of heads and the same FFN width, chosen per block
by importance: the architecture's config (``num_attention_heads``, ``intermediate_size``)
stays a single number per field, so the pruned model saves as config JSON + safetensors
and rebuilds with stock ``transformers`` classes. Which heads and neurons go is decided in
each block on its own.

Importance: ``l1`` / ``l2`` read weight norms (a head's q/k/v rows and output-projection
columns; a neuron's up row and down column). Every activation criterion reads the
*contribution* of a unit on calibration inputs: the mean absolute value it feeds into the
output projection times the norm of the weights it is multiplied by. Attention heads and
GELU neurons are not zero-or-not units, so a share of zeros has nothing to count there.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.models.families.base import AttentionSite, Family, FfnSite, keep_heads, keep_neurons
from trimnet.optimize.prune.config import PruneConfig
from trimnet.optimize.prune.record import GroupRecord, LayerChange, PruneRecord

CALIBRATION_CAP = 128  # encoders are costly per sample; this many inputs rank heads stably


def plan_counts(heads0: int, neurons0: int, share: float, cfg: PruneConfig) -> tuple[int, int]:
    """Heads and FFN neurons each block keeps when ``share`` of them go."""
    heads = max(1, min(heads0, math.floor(heads0 * (1 - share) + 0.5)))
    q = cfg.round_to if neurons0 >= cfg.round_to else 1
    neurons = q * math.floor(neurons0 * (1 - share) / q + 0.5)
    return heads, max(q, cfg.min_channels, min(neurons0, neurons))


def _weight_scores(fam_sites: tuple[list[AttentionSite], list[FfnSite]], p: int) -> tuple[list, list]:
    attn, ffn = fam_sites
    heads = []
    for s in attn:
        rows = sum(layer.weight.detach().abs().pow(p).sum(1) for layer in (s.q, s.k, s.v))
        cols = s.o.weight.detach().abs().pow(p).sum(0)
        heads.append((rows + cols).view(-1, s.head_dim).sum(1).double())
    neurons = [(f.up.weight.detach().abs().pow(p).sum(1) + f.down.weight.detach().abs().pow(p).sum(0)).double()
               for f in ffn]
    return heads, neurons


def _contribution_scores(model: nn.Module, sites: tuple[list[AttentionSite], list[FfnSite]],
                         x: torch.Tensor, batch_size: int) -> tuple[list, list]:
    attn, ffn = sites
    sums: dict[int, torch.Tensor] = {}
    layers = [s.o for s in attn] + [f.down for f in ffn]

    def hook(layer: nn.Linear):
        def record(module, args) -> None:
            a = args[0].detach().abs().double()
            sums[id(layer)] = sums.get(id(layer), 0) + a.reshape(-1, a.shape[-1]).sum(0)
        return record

    handles = [layer.register_forward_pre_hook(hook(layer)) for layer in layers]
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size])
    finally:
        for h in handles:
            h.remove()

    def score(layer: nn.Linear) -> torch.Tensor:
        return sums[id(layer)] * layer.weight.detach().double().norm(dim=0)

    heads = [score(s.o).view(-1, s.head_dim).sum(1) for s in attn]
    return heads, [score(f.down) for f in ffn]


def _macs_split(model: nn.Module, example: torch.Tensor, attn: list[AttentionSite], ffn: list[FfnSite]
                ) -> tuple[int, int, int]:
    """(total, attention MACs that scale with heads, FFN MACs that scale with neurons), batch 1."""
    from trimnet.profile import profile

    prof = profile(model, example[:1])
    by_name = {lay.name: lay.macs for lay in prof.layers}
    names = {m: n for n, m in model.named_modules()}
    a = sum(by_name.get(names[m], 0) for s in attn for m in (s.q, s.k, s.v, s.o, s.owner))
    f = sum(by_name.get(names[m], 0) for s in ffn for m in (s.up, s.down))
    return int(prof.macs), a, f


def _share_for_macs(cfg: PruneConfig, macs: tuple[int, int, int], heads0: int, neurons0: int,
                    target: float) -> float:
    total, a, f = macs

    def estimate(share: float) -> float:
        h, n = plan_counts(heads0, neurons0, share, cfg)
        return total - a * (1 - h / heads0) - f * (1 - n / neurons0)

    if estimate(1.0) > target:
        reachable = estimate(1.0) / total
        raise ConfigError(f"target_macs cannot be reached: with one head and the narrowest FFN per block the "
                          f"model keeps {reachable:.3f} of its MACs (embeddings, norms and the classifier do not "
                          f"shrink); ask for at least {reachable + 0.005:.2f}")
    lo, hi = 0.0, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if estimate(mid) <= target else (mid, hi)
    return hi


def prune_blocks(work: nn.Module, fam: Family, x_cal: torch.Tensor, cfg: PruneConfig, record: PruneRecord,
                 step: int, macs0: tuple[int, int, int] | None) -> dict[str, Any]:
    """One pruning step on ``work`` (in place): every block down to the planned head and neuron
    counts; returns the step's history row (the caller appends it)."""
    attn, ffn = fam.attention(work), fam.ffn(work)
    heads0 = record.history[0]["heads"][0] if record.history else attn[0].heads
    neurons0 = record.history[0]["neurons"][0] if record.history else ffn[0].neurons
    if cfg.target_macs is not None:
        keep = 1.0 - (1.0 - cfg.target_macs) * step / cfg.steps
        share = _share_for_macs(cfg, macs0, heads0, neurons0, keep * macs0[0])
    else:
        share = cfg.amount * step / cfg.steps
    heads, neurons = plan_counts(heads0, neurons0, share, cfg)
    if cfg.criterion in ("l1", "l2"):
        used = cfg.criterion
        h_scores, n_scores = _weight_scores((attn, ffn), 1 if used == "l1" else 2)
    else:
        used = "contribution"
        was = work.training
        work.eval()
        h_scores, n_scores = _contribution_scores(work, (attn, ffn), x_cal[:CALIBRATION_CAP], min(cfg.batch_size, 32))
        work.train(was)
    names = {m: n for n, m in work.named_modules()}
    for site, scores in zip(attn, h_scores):
        if site.heads > heads:
            keep = torch.sort(torch.argsort(scores, descending=True, stable=True)[:heads]).values
            _note(record, site.name, "head", site.heads, keep, used, [names[m] for m in (site.q, site.k, site.v, site.o)])
            before = {m: (m.out_features, m.in_features) for m in (site.q, site.k, site.v, site.o)}
            keep_heads(site, keep)
            _layers(record, names, before)
            record.layers.setdefault(site.name, LayerChange(name=site.name, type=type(site.owner).__name__))
            change = record.layers[site.name]
            change.heads = (change.heads[0] if change.heads else len(scores), heads)
    for site, scores in zip(ffn, n_scores):
        if site.neurons > neurons:
            keep = torch.sort(torch.argsort(scores, descending=True, stable=True)[:neurons]).values
            _note(record, site.name, "neuron", site.neurons, keep, used, [names[site.up], names[site.down]])
            before = {m: (m.out_features, m.in_features) for m in (site.up, site.down)}
            keep_neurons(site, keep)
            _layers(record, names, before)
    fam.set_sizes(work, heads, neurons)
    row = {"step": step, "share": round(share, 4), "heads": [heads0, heads], "neurons": [neurons0, neurons]}
    if cfg.scope == "global" and step == 1:
        record.notes.append("heads and FFN neurons go in equal numbers from every block, so the model config "
                            "keeps one head count and one FFN width; which ones go is ranked within each block")
    if used != cfg.criterion and step == 1:
        record.notes.append(f"criterion {cfg.criterion} counts zeros after an activation; attention heads and FFN "
                            f"neurons were ranked by their contribution to the block output instead")
    return row


def _note(record: PruneRecord, name: str, unit: str, before: int, keep: torch.Tensor, used: str,
          layers: list[str]) -> None:
    rec = next((g for g in record.groups if g.name == name), None)
    if rec is None:
        rec = GroupRecord(name=name, channels=(before, 0), unit=unit, criterion=used, layers=layers)
        rec.alive = list(range(before))  # original positions still present
        record.groups.append(rec)
    alive = rec.alive
    kept = {int(k) for k in keep}
    rec.removed += [alive[i] for i in range(len(alive)) if i not in kept]
    rec.alive = [alive[i] for i in sorted(kept)]
    rec.channels = (rec.channels[0], len(rec.alive))


def _layers(record: PruneRecord, names: dict, before: dict) -> None:
    for m, (out0, in0) in before.items():
        name = names[m]
        change = record.layers.setdefault(name, LayerChange(name=name, type=type(m).__name__))
        if m.out_features != out0:
            change.out = (change.out[0] if change.out else out0, m.out_features)
        if m.in_features != in0:
            change.inputs = (change.inputs[0] if change.inputs else in0, m.in_features)
