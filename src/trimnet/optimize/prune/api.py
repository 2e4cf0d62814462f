"""``prune(model, data, PruneConfig(...))``: measure, rank, remove, fine-tune; repeat for ``steps``."""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trimnet.data.dataset import Dataset
from trimnet.errors import ConfigError, ModelError, require
from trimnet.models import layers as L
from trimnet.models.families import family_of
from trimnet.optimize.finetune import finetune
from trimnet.optimize.importance import Evidence, get_criterion, score
from trimnet.optimize.prune.config import PruneConfig
from trimnet.optimize.prune.graph import ChannelGraph, Group, _module_stack_hooks
from trimnet.optimize.prune.plan import MacEstimate, Scored, plan, search_share
from trimnet.optimize.prune.record import GroupRecord, LayerChange, PruneRecord
from trimnet.optimize.stats import activation_stats, calibration_inputs

log = logging.getLogger("trimnet.prune")


@dataclass
class PruneResult:
    model: nn.Module
    record: PruneRecord

    def to_dict(self) -> dict[str, Any]:
        return self.record.to_dict()


def prune(model: nn.Module, data: Any, config: PruneConfig | None = None, *, inplace: bool = False,
          task: Any = None) -> PruneResult:
    """Structurally prune ``model``: whole channels, neurons and attention heads are removed.

    ``data`` is a ``Dataset`` (calibration on its training split, fine-tuning, test accuracy
    in the record) or a tensor of inputs (calibration only: no fine-tuning, as the notes say).
    The model is copied unless ``inplace``; the unpruned model is the distillation teacher.
    Any user error is a ``ConfigError`` or ``ModelError``, and leaves ``model`` as it was.
    ``task`` (default: the dataset's) scores the record's "accuracy" and drives fine-tuning.
    """
    from trimnet.models.families import as_module

    model = as_module(model, data, data if isinstance(data, torch.Tensor) else None)
    cfg = config or PruneConfig()
    cfg.validate()
    require("torch_pruning", "pruning")
    criterion = get_criterion(cfg.criterion)
    labelled = isinstance(data, Dataset)
    x_cal, _ = calibration_inputs(data, cfg.calibration_samples)
    example = x_cal[:2]
    was_training = model.training
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    try:
        expected = _run(model, example.to(device), "the model does not run on its calibration inputs")
        teacher = copy.deepcopy(model).eval() if labelled and cfg.finetune.epochs and cfg.finetune.distill else None
    finally:
        model.train(was_training)
    work = model if inplace else copy.deepcopy(model)
    work.cpu().eval()
    example = example.cpu()
    record = PruneRecord(criterion=cfg.criterion, scope=cfg.scope, ratio=cfg.ratio, target_macs=cfg.target_macs,
                         steps=cfg.steps)
    family = family_of(work)
    if family.attention(work) or family.ffn(work):
        return _prune_encoder(work, family, data, x_cal, example, expected, teacher, cfg, record)
    macs0, params0 = _size(work, example)
    accuracy = _accuracy_fn(data, task)
    if accuracy:
        record.accuracy["before"] = accuracy(work)
    tracker = _Tracker()
    epochs = _share_out(cfg.finetune.epochs if labelled else 0, cfg.steps)
    if cfg.finetune.epochs and not labelled:
        record.notes.append("not fine-tuned: the data has no labels (pass a Dataset to fine-tune)")
    for step in range(1, cfg.steps + 1):
        graph = ChannelGraph(work, example, cfg.ignore)
        tracker.start(graph, record, step == 1)
        scored = _score(work, graph, data, cfg, criterion, tracker)
        share, estimate = _target(work, example, graph, scored, cfg, step, macs0)
        removal = plan(scored, share, cfg.scope, cfg.round_to, cfg.min_channels)
        for s in scored:
            units = removal.get(s.group.name)
            if units is not None and len(units):
                channels = s.group.channels_of(units)
                tracker.removed(s, graph.prune(s.group, channels), channels)
                _run(work, example, f"pruning group '{s.group.name}' broke the model", expected.shape, s.group.name)
        if cfg.recalibrate_bn:
            recalibrate_bn(work, x_cal, cfg.batch_size)
        macs, params = _size(work, example)
        row = {"step": step, "share": round(share, 4), "macs": macs, "params": params}
        if estimate is not None:
            row["macs_estimate"] = int(estimate)
        if accuracy:
            row["accuracy_pruned"] = accuracy(work)
        if epochs[step - 1]:
            finetune(work, data, cfg.finetune, teacher, epochs[step - 1], task=task)
            work.cpu().eval()
            if accuracy:
                row["accuracy_finetuned"] = accuracy(work)
        record.history.append(row)
        log.info("prune step %d/%d: %.0f%% of channels gone, %s MACs, %s params%s", step, cfg.steps, 100 * share,
                 f"{macs:,}", f"{params:,}", "".join(f", {k.replace('_', ' ')} {row[k]:.4f}" for k in
                                                     ("accuracy_pruned", "accuracy_finetuned") if k in row))
    record.macs, record.params = (macs0, macs), (params0, params)
    if accuracy:
        record.accuracy["pruned"] = record.history[-1]["accuracy_pruned"]
        record.accuracy["after"] = record.history[-1].get("accuracy_finetuned", record.accuracy["pruned"])
    tracker.finish(work, record)
    return PruneResult(model=work, record=record)


def _prune_encoder(work: nn.Module, family, data: Any, x_cal: torch.Tensor, example: torch.Tensor,
                   expected: torch.Tensor, teacher, cfg: PruneConfig, record: PruneRecord) -> PruneResult:
    """Heads and FFN neurons of a transformer encoder, as its family places them (see ``blocks``)."""
    from trimnet.optimize.prune.blocks import _macs_split, prune_blocks

    if cfg.ignore:
        raise ConfigError(f"--ignore is not supported for {family.name} encoders: every block keeps the same head "
                          f"count and FFN width so the config stays consistent; drop --ignore")
    labelled = isinstance(data, Dataset)
    x_cal = x_cal.cpu()
    split = _macs_split(work, example, family.attention(work), family.ffn(work))
    macs0, params0 = split[0], sum(p.numel() for p in work.parameters())
    accuracy = _accuracy_fn(data)
    if accuracy:
        record.accuracy["before"] = accuracy(work)
    epochs = _share_out(cfg.finetune.epochs if labelled else 0, cfg.steps)
    if cfg.finetune.epochs and not labelled:
        record.notes.append("not fine-tuned: the data has no labels (pass a Dataset to fine-tune)")
    for step in range(1, cfg.steps + 1):
        row = prune_blocks(work, family, x_cal, cfg, record, step, split)
        _run(work, example, f"pruning the heads and FFN of step {step} broke the model", expected.shape)
        row["macs"], row["params"] = _size(work, example)
        if accuracy:
            row["accuracy_pruned"] = accuracy(work)
        if epochs[step - 1]:
            finetune(work, data, cfg.finetune, teacher, epochs[step - 1])
            work.cpu().eval()
            if accuracy:
                row["accuracy_finetuned"] = accuracy(work)
        record.history.append(row)
        log.info("prune step %d/%d: heads %d -> %d, FFN %d -> %d per block, %s MACs", step, cfg.steps,
                 *row["heads"], *row["neurons"], f"{row['macs']:,}")
    record.macs = (macs0, record.history[-1]["macs"])
    record.params = (params0, record.history[-1]["params"])
    if accuracy:
        record.accuracy["pruned"] = record.history[-1]["accuracy_pruned"]
        record.accuracy["after"] = record.history[-1].get("accuracy_finetuned", record.accuracy["pruned"])
    return PruneResult(model=work.eval(), record=record)


def recalibrate_bn(model: nn.Module, x: torch.Tensor, batch_size: int = 256) -> None:
    """Re-estimate batch-norm running statistics on ``x``: a layer whose inputs lost channels
    sees a different distribution, and stale statistics cost more accuracy than the pruning."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    was = model.training
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the calibration batches
        m.train()
    try:
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                model(x[i:i + batch_size])
    finally:
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum
        model.train(was)


def _share_out(epochs: int, steps: int) -> list[int]:
    """Fine-tuning epochs per step: an even share, the rest on the last steps."""
    base, extra = divmod(epochs, steps)
    return [base + (1 if i >= steps - extra else 0) for i in range(steps)]


def _score(model: nn.Module, graph: ChannelGraph, data: Any, cfg: PruneConfig, criterion, tracker) -> list[Scored]:
    stats = None
    if criterion.needs in ("activations", "gradients"):
        stats = activation_stats(model, data, samples=cfg.calibration_samples, batch_size=cfg.batch_size,
                                 threshold=cfg.threshold, gradients=criterion.needs == "gradients")
    evidence = Evidence(stats=stats)
    out = []
    for g in graph.groups:
        if g.skip:
            continue
        channel_scores, used = score(criterion, g, evidence)
        out.append(Scored(group=g, scores=g.per_unit(channel_scores), criterion=used,
                          comparable=criterion.comparable and used == criterion.name,
                          original=tracker.original_units(g)))
        tracker.used[g.name] = used
    return out


def _target(model, example, graph, scored, cfg: PruneConfig, step: int, macs0: int) -> tuple[float, float | None]:
    """The share of original channels gone after ``step``, and the estimated MACs for a MAC target."""
    if cfg.target_macs is None:
        return cfg.amount * step / cfg.steps, None
    from trimnet.profile import profile

    prof = profile(model, example[:1])
    estimate = MacEstimate(model, [s.group for s in scored], {lay.name: lay.macs for lay in prof.layers}, prof.macs)
    keep = 1.0 - (1.0 - cfg.target_macs) * step / cfg.steps
    share, macs = search_share(scored, estimate, keep * macs0, cfg.scope, cfg.round_to, cfg.min_channels)
    if macs > keep * macs0 * 1.0001:
        reachable = macs / macs0
        raise ConfigError(
            f"target_macs {cfg.target_macs} cannot be reached: with every prunable layer at its floor the model "
            f"keeps {reachable:.3f} of its MACs (layers tied to the input or output, or ignored, cannot shrink); "
            f"ask for at least {reachable + 0.005:.2f}, or lower round_to / min_channels")
    return share, macs


def _size(model: nn.Module, example: torch.Tensor) -> tuple[int, int]:
    from trimnet.profile import profile

    prof = profile(model, example[:1])
    return int(prof.macs), sum(p.numel() for p in model.parameters())


def _accuracy_fn(data: Any, task: Any = None):
    if not isinstance(data, Dataset) or len(data.y_test) == 0:
        return None
    from trimnet.tasks import task_for
    from trimnet.train.evaluate import task_score

    task = task_for(data, task)
    return lambda m: task_score(m, data.x_test, data.y_test, task)


class _Failure(TorchFunctionMode):
    """Remembers the first operator that raised."""

    failed: str | None = None

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            return func(*args, **(kwargs or {}))
        except Exception:
            if self.failed is None:
                self.failed = getattr(func, "__name__", str(func))
            raise


def _run(model: nn.Module, x: torch.Tensor, what: str, shape: torch.Size | None = None,
         group: str | None = None) -> torch.Tensor:
    """Run ``model`` on ``x``; a ``ModelError`` naming the operator and module if it fails."""
    stack: list[str] = []
    hooks = _module_stack_hooks(model, stack)
    failure = _Failure()
    try:
        with torch.no_grad(), failure:
            out = model(x)
    except Exception as exc:  # any operator may raise; the user needs to know which and where
        where = stack[-1] if stack else ""
        module = dict(model.named_modules()).get(where)
        op = f"operator {failure.failed} in " if failure.failed else ""
        hint = f"; leave it out with --ignore {where or group}" if (where or group) else ""
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"{what}: {op}module '{where}' ({type(module).__name__}) failed: {msg}{hint}") from None
    finally:
        for h in hooks:
            h.remove()
    if shape is not None and tuple(out.shape) != tuple(shape):
        raise ModelError(f"{what}: the output shape changed from {tuple(shape)} to {tuple(out.shape)}; "
                         f"leave the group out with --ignore {group}")
    return out


class _Tracker:
    """Maps current positions back to the original model's, across steps, for the record."""

    def __init__(self):
        self.original: dict[str, int] = {}  # group -> original units
        self.alive: dict[tuple[str, str], list[int]] = {}  # (module, out|in) -> original positions
        self.group_alive: dict[str, list[int]] = {}
        self.groups: dict[str, GroupRecord] = {}
        self.used: dict[str, str] = {}
        self.first_shapes: dict[str, tuple] = {}
        self.heads0: dict[str, int] = {}
        self.removed_positions: dict[str, list[int]] = {}  # module -> original output positions removed

    def start(self, graph: ChannelGraph, record: PruneRecord, first: bool) -> None:
        if first:
            for g in graph.groups:
                self.original[g.name] = g.units
                self.group_alive[g.name] = list(range(g.channels))
                if g.skip:
                    record.skipped.append({"group": g.name, "reason": g.skip})
            for name in graph.ignored:
                record.skipped.append({"group": name, "reason": "ignored as asked: its shape is kept"})
            for name in graph.unreached:
                record.skipped.append({"group": name, "reason": "its outputs only feed ignored modules"})
            for name, m in graph.model.named_modules():
                self.first_shapes[name] = _shape(m)
                if isinstance(m, L.SelfAttention):
                    self.heads0[name] = m.num_heads
            record.notes.extend(graph.notes)

    def original_units(self, g: Group) -> int:
        return self.original.get(g.name, g.units)

    def removed(self, s: Scored, per_item: list, channels: torch.Tensor) -> None:
        g = s.group
        alive = self.group_alive.setdefault(g.name, list(range(g.channels)))
        drop = {int(c) for c in channels}
        gone = [alive[c] for c in sorted(drop)]
        self.group_alive[g.name] = [c for i, c in enumerate(alive) if i not in drop]
        rec = self.groups.get(g.name)
        if rec is None:
            unit = "head" if g.heads else ("block position" if g.unit > 1 else "channel")
            rec = self.groups[g.name] = GroupRecord(name=g.name, channels=(len(alive), 0), unit=unit,
                                                    criterion=self.used.get(g.name, ""))
        rec.removed += gone
        rec.channels = (rec.channels[0], len(self.group_alive[g.name]))
        rec.layers = sorted({i.name for i in g.items if i.role in ("out", "in")} | set(rec.layers))
        for item, positions, width in per_item:
            if item.role != "out" or not len(positions):
                continue
            key = (item.name, item.role)
            # the module's whole axis: several groups may share it (a concatenation's readers)
            alive_pos = self.alive.setdefault(key, list(range(width if width else int(positions.max()) + 1)))
            drop = {int(p) for p in positions}
            self.removed_positions.setdefault(item.name, []).extend(alive_pos[p] for p in sorted(drop))
            self.alive[key] = [p for i, p in enumerate(alive_pos) if i not in drop]

    def finish(self, model: nn.Module, record: PruneRecord) -> None:
        record.groups = list(self.groups.values())
        removed = self.removed_positions
        for name, m in model.named_modules():
            before, after = self.first_shapes.get(name), _shape(m)
            if before is None or before == after:
                continue
            change = LayerChange(name=name, type=type(m).__name__)
            if before[0] is not None:
                change.out = (before[0], after[0])
            if before[1] is not None and before[1] != after[1]:
                change.inputs = (before[1], after[1])
            change.removed = sorted(removed.get(name, []))
            if isinstance(m, L.SelfAttention):
                change.heads = (self.heads0[name], m.num_heads)
                q_gone = sorted(removed.get(f"{name}.q", []))
                change.removed_heads = sorted({p // m.head_dim for p in q_gone})
            record.layers[name] = change


def _shape(m: nn.Module) -> tuple | None:
    if isinstance(m, nn.Conv2d):
        return (m.out_channels, m.in_channels)
    if isinstance(m, nn.Linear):
        return (m.out_features, m.in_features)
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return (m.num_features, None)
    if isinstance(m, nn.LayerNorm):
        return (m.normalized_shape[-1], None)
    if isinstance(m, L.SelfAttention):
        return (m.q.out_features, m.q.in_features)
    if isinstance(m, (L.PositionEmbedding, L.FeatureTokens)):
        return (m.dim, None)
    return None
