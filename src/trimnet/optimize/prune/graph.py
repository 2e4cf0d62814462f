"""The channel graph: Torch-Pruning's dependency graph, wrapped so that groups, errors and
records are trimnet's.

A *group* is a set of channels that must go together: a conv's filters, the batch norm
after it, the next layer's input columns, and every layer coupled to them by a residual
addition, a concatenation, a depthwise conv or a flatten. Torch-Pruning traces the model
once and finds them; this file turns each of its groups into a ``Group`` that says which
positions of which module each channel is, and whether and in what units it may shrink:

- whole attention heads for a ``SelfAttention`` (q/k/v output rows and proj input columns
  of a head go together, so ``num_heads`` follows from the new width);
- the same positions in every block of a grouped convolution (so ``groups`` still divides);
- single channels otherwise.

Groups tied to the model's input or output, or touching a layer the user named, are left
alone, with the reason recorded.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
from torch import nn

from trimnet.errors import ConfigError, ModelError, require
from trimnet.models import layers as L
from trimnet.optimize.stats import site_zeros

# parameters held outside standard modules, and the axis that is their channel axis
_UNWRAPPED = {L.PositionEmbedding: {"weight": 2}}
PRUNABLE = (nn.Conv2d, nn.Linear)


@dataclass
class Item:
    """One module (or activation) in a group: which of its positions are which group channel."""

    name: str
    module: Any  # nn.Module, nn.Parameter, or None for an activation site
    role: str  # "out": its outputs shrink; "in": its inputs shrink; "site": an activation's channels
    idxs: torch.Tensor  # positions along the module's own axis
    root: torch.Tensor  # the group channel of each position


@dataclass
class Group:
    name: str  # the first layer whose outputs are the group's channels
    channels: int
    unit: int = 1  # channels per unit (head_dim for attention heads; the block count of a grouped conv)
    unit_of: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))
    items: list[Item] = field(default_factory=list)
    skip: str | None = None  # why the group is left alone
    heads: str | None = None  # the SelfAttention whose heads the units are
    root: Any = None  # Torch-Pruning's root module and handler
    handler: Any = None

    @property
    def units(self) -> int:
        return self.channels // self.unit

    @property
    def producers(self) -> list[Item]:
        """Conv and linear layers whose output channels the group is."""
        return [i for i in self.items if i.role == "out" and isinstance(i.module, PRUNABLE)]

    @property
    def sites(self) -> list[Item]:
        return [i for i in self.items if i.role == "site"]

    def members(self, role: str, kind: type | tuple[type, ...]) -> list[Item]:
        return [i for i in self.items if i.role == role and isinstance(i.module, kind)]

    def per_channel(self, item: Item, values: torch.Tensor) -> torch.Tensor:
        """Values along ``item``'s own axis -> one value per group channel (the mean where several map to one)."""
        total = torch.zeros(self.channels, dtype=torch.float64)
        count = torch.zeros(self.channels, dtype=torch.float64)
        total.index_add_(0, item.root, values[item.idxs].double())
        count.index_add_(0, item.root, torch.ones(len(item.root), dtype=torch.float64))
        return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))

    def per_unit(self, channel_scores: torch.Tensor) -> torch.Tensor:
        """Channel scores -> unit scores (the mean over a unit's channels)."""
        total = torch.zeros(self.units, dtype=torch.float64).index_add_(0, self.unit_of, channel_scores.double())
        return total / self.unit

    def channels_of(self, units: torch.Tensor) -> torch.Tensor:
        mask = torch.isin(self.unit_of, units)
        return torch.nonzero(mask).flatten()


def _module_stack_hooks(model: nn.Module, stack: list[str]) -> list:
    """Hooks that keep ``stack`` as the path of modules running now (the innermost last)."""

    def enter(name: str):
        def hook(module, args) -> None:
            stack.append(name)
        return hook

    def leave(module, args, output) -> None:
        if stack:
            stack.pop()

    hooks = []
    for name, m in model.named_modules():
        hooks.append(m.register_forward_pre_hook(enter(name)))
        hooks.append(m.register_forward_hook(leave))
    return hooks


def resolve_ignored(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Module]:
    modules = dict(model.named_modules())
    out = {}
    for name in names:
        if name not in modules or name == "":
            layers = [n for n, m in modules.items() if n and isinstance(m, (*PRUNABLE, L.SelfAttention))]
            raise ConfigError(f"--ignore {name!r} names no module of the model; layers are named like "
                              f"{', '.join(layers[:6])}{', ...' if len(layers) > 6 else ''}")
        out[name] = modules[name]
    return out


class ChannelGraph:
    """The prunable groups of ``model``, traced on ``example`` (a small batch of inputs)."""

    def __init__(self, model: nn.Module, example: torch.Tensor, ignore: Iterable[str] = ()):
        tp = require("torch_pruning", "pruning")
        self.model = model
        self.ignored = resolve_ignored(model, ignore)
        self._check_parameters(tp)
        self._names = {m: n for n, m in model.named_modules()}
        self._position = {n: i for i, n in enumerate(self._names.values())}  # module order, for naming
        self._names.update({p: n for n, p in model.named_parameters()})
        self._input = nn.Parameter(example.detach().clone())
        unwrapped = [(self._input, 2 if example.dim() == 3 else 1)]
        for name, m in model.named_modules():
            if not self._inside_ignored(name):
                unwrapped += [(getattr(m, p), axis) for p, axis in _UNWRAPPED.get(type(m), {}).items()]
        self._sites: dict[Any, str] = {}
        self._feeds: set = set()  # grad_fns of the inputs of ignored modules
        self._leaves: list[torch.Tensor] = []  # the outputs of ignored modules, cut off from the graph
        outputs: list[Any] = []
        stack: list[str] = []
        hooks = _module_stack_hooks(model, stack)
        hooks += [m.register_forward_hook(_site_hook(self._sites, name))
                  for name, m in model.named_modules() if site_zeros(m) is not None]
        for m in self.ignored.values():
            hooks += [m.register_forward_pre_hook(self._cut_inputs), m.register_forward_hook(self._cut_output)]

        def forward(m: nn.Module, x: torch.Tensor) -> Any:
            out = m(x)
            outputs.extend(t.grad_fn for t in (out if isinstance(out, (tuple, list)) else (out,))
                           if isinstance(t, torch.Tensor))
            return out

        try:
            with torch.enable_grad(), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self.dg = tp.DependencyGraph().build_dependency(
                    model, example_inputs=self._input, forward_fn=forward, unwrapped_parameters=unwrapped,
                    customized_pruners={L.FeatureTokens: _feature_tokens_pruner(tp)}, verbose=False)
        except Exception as exc:  # the tracer raises whatever the model's forward raises
            where = stack[-1] if stack else ""
            raise ModelError(
                f"the dependency graph cannot trace {type(model).__name__}"
                + (f": module '{where}' ({type(dict(model.named_modules())[where]).__name__})" if where else "")
                + f" failed with {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                + (f"; leave it out with --ignore {where}" if where else "")) from None
        finally:
            for h in hooks:
                h.remove()
        self.notes = sorted({str(w.message).splitlines()[0] for w in caught})
        self._outputs = outputs
        self._leaf_ids = {id(t) for t in self._leaves}
        self.groups = [self._group(g) for g in self.dg.get_all_groups(root_module_types=PRUNABLE)]
        self.groups.sort(key=lambda g: self._position.get(g.name, len(self._position)))
        grouped = {i.name for g in self.groups for i in g.items if i.role == "out"}
        # layers the trace never reached: their outputs only feed ignored modules
        self.unreached = [n for n, m in model.named_modules()
                          if isinstance(m, PRUNABLE) and n not in grouped and not self._inside_ignored(n)]

    def _check_parameters(self, tp) -> None:
        """Parameters outside layers the graph knows have no known channel axis: Torch-Pruning
        would guess one (and can loop forever on the guess). Ask for them to be ignored."""
        elementwise = tp.ops.OPTYPE.ELEMENTWISE
        for name, m in self.model.named_modules():
            own = [p for p, _ in m.named_parameters(recurse=False)]
            if not own or type(m) in _UNWRAPPED or type(m) is L.FeatureTokens or self._inside_ignored(name):
                continue
            if tp.ops.module2type(m) == elementwise:
                raise ModelError(
                    f"module '{name}' ({type(m).__name__}) holds parameters ({', '.join(own)}) outside the layers "
                    f"the dependency graph understands, so it cannot tell which of their axes are channels; "
                    f"leave it out with --ignore {name} (Python: PruneConfig(ignore=['{name}']))")

    def _inside_ignored(self, name: str) -> bool:
        return any(name == i or name.startswith(i + ".") for i in self.ignored)

    def _cut_inputs(self, module: nn.Module, args: tuple) -> tuple:
        """An ignored module runs on detached inputs: nothing inside it is traced."""
        self._feeds.update(a.grad_fn for a in args if isinstance(a, torch.Tensor) and a.grad_fn is not None)
        return tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args)

    def _cut_output(self, module: nn.Module, args: tuple, output: Any) -> Any:
        if isinstance(output, torch.Tensor):
            leaf = output.detach().requires_grad_()
            self._leaves.append(leaf)
            return leaf
        return output

    # ------------------------------------------------------------------ groups

    def _group(self, tp_group) -> Group:
        output_op = require("torch_pruning", "pruning").ops.OPTYPE.OUTPUT
        items: list[Item] = []
        skip = None
        for entry in tp_group:
            node, handler = entry.dep.target, entry.dep.handler
            module = node.module
            idx = torch.as_tensor(list(entry.idxs), dtype=torch.long)
            root = torch.as_tensor(list(entry.root_idxs), dtype=torch.long)
            out = self.dg.is_out_channel_pruning_fn(handler)
            if module is self._input:
                skip = skip or "its channels are the model's input channels"
                continue
            if out and (node.type == output_op or any(node.grad_fn is o for o in self._outputs)):
                skip = skip or "it changes the model's outputs"
            layer = module in self._names
            hit = self._ignored_hit(node, ("out" if out else "in") if layer else "op")
            if hit:
                skip = skip or (f"it touches {hit}, which is ignored" if hit.startswith("'") else f"it is {hit}")
            if layer:
                items.append(Item(self._names[module], module, "out" if out else "in", idx, root))
            if node.grad_fn in self._sites and (not layer or out):  # a fused layer is its own activation site
                items.append(Item(self._sites[node.grad_fn], None, "site", idx, root))
        root_module = tp_group[0].dep.target.module
        group = Group(name=self._names.get(root_module, "?"), channels=len(tp_group[0].idxs), items=items,
                      skip=skip, root=root_module, handler=self.dg.get_pruner_of_module(root_module).prune_out_channels)
        producers = [i.name for i in group.producers]
        if producers:
            group.name = min(producers, key=lambda n: self._position.get(n, len(self._position)))
        self._units(group)
        return group

    def _ignored_hit(self, node, role: str) -> str | None:
        """Does this node belong to an ignored module, feed one, or read one's output?

        A layer's ``out`` entry is tied to what its output feeds, its ``in`` entry to what
        its input reads; an operator (``op``) passes its channels through, so both.
        """
        if not self.ignored:
            return None
        name = self._names.get(node.module)
        for ignored in self.ignored:
            if name is not None and (name == ignored or name.startswith(ignored + ".")):
                return f"'{ignored}'"
        fn = node.grad_fn
        if role in ("out", "op") and fn in self._feeds:
            return "the input of an ignored module"
        if role in ("in", "op"):
            for nxt, _ in getattr(fn, "next_functions", ()):
                if nxt is not None and id(getattr(nxt, "variable", None)) in self._leaf_ids:
                    return "the output of an ignored module"
        return None

    def _units(self, group: Group) -> None:
        """Whole heads for attention, equal positions per block for grouped convs, else channels."""
        group.unit_of = torch.arange(group.channels)
        if group.skip:
            return
        attention = self._attention_of(group)
        blocks = [i.module.groups for i in group.items if isinstance(i.module, nn.Conv2d)
                  and 1 < i.module.groups and not is_depthwise(i.module)]
        identity = all(torch.equal(i.root, i.idxs) for i in group.items if i.role != "site")
        if attention is not None and blocks:
            group.skip = "it couples attention heads with a grouped convolution"
        elif attention is not None:
            name, attn = attention
            if not identity or group.channels % attn.head_dim:
                group.skip = f"its channels do not map onto whole heads of '{name}'"
                return
            group.heads, group.unit = name, attn.head_dim
            group.unit_of = torch.arange(group.channels) // attn.head_dim
        elif blocks:
            g = math.lcm(*blocks)
            if not identity or group.channels % g:
                group.skip = "its grouped convolution's blocks do not line up"
                return
            per_block = group.channels // g
            group.unit = g
            group.unit_of = torch.arange(group.channels) % per_block

    def _attention_of(self, group: Group) -> tuple[str, L.SelfAttention] | None:
        for name, m in self.model.named_modules():
            if isinstance(m, L.SelfAttention):
                if any(i.role == "out" and i.module in (m.q, m.k, m.v) for i in group.items):
                    return name, m
        return None

    # ------------------------------------------------------------------ pruning

    def prune(self, group: Group, channels: torch.Tensor) -> list[tuple[Item, torch.Tensor, int]]:
        """Remove ``channels`` (group channel indices) everywhere in the group; returns, per
        item, the positions removed along its own axis and the width of that axis, both in
        the coordinates just before the call.

        The positions come from Torch-Pruning's group made now, not from the one traced at the
        start of the step: where layers are concatenated (DenseNet), pruning an earlier group
        shifts every later group's positions in the layers that read the concatenation.
        """
        chosen = sorted(int(c) for c in channels)
        tp_group = self.dg.get_pruning_group(group.root, group.handler, chosen)
        removed = []
        for entry in tp_group:
            module = entry.dep.target.module
            if module is self._input or module not in self._names or not isinstance(module, nn.Module):
                continue
            role = "out" if self.dg.is_out_channel_pruning_fn(entry.dep.handler) else "in"
            idx = torch.as_tensor(list(entry.idxs), dtype=torch.long)
            root = torch.as_tensor(list(entry.root_idxs), dtype=torch.long)
            removed.append((Item(self._names[module], module, role, idx, root), idx, _axis_width(module, role)))
        try:
            tp_group.prune()
        except Exception as exc:  # Torch-Pruning asserts on indices its graph got wrong
            raise ModelError(f"pruning group '{group.name}' failed in Torch-Pruning ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}); leave it out with --ignore {group.name}"
                             ) from None
        return removed


def _axis_width(m: nn.Module, role: str) -> int | None:
    """The current size of the axis ``role`` prunes along (None for modules without one)."""
    if isinstance(m, nn.Conv2d):
        return m.out_channels if role == "out" else m.in_channels
    if isinstance(m, nn.Linear):
        return m.out_features if role == "out" else m.in_features
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        return m.num_features
    if isinstance(m, nn.LayerNorm):
        return m.normalized_shape[-1]
    if isinstance(m, L.SelfAttention):
        return m.q.out_features if role == "out" else m.q.in_features
    if isinstance(m, (L.PositionEmbedding, L.FeatureTokens)):
        return m.dim
    return None


def _feature_tokens_pruner(tp):
    """FeatureTokens as one node: its outputs (the token width) shrink; its inputs are features
    of the data and never do. Traced as plain tensors instead, the broadcast multiply would tie
    the token width to the input features."""

    class FeatureTokensPruner(tp.pruner.BasePruningFunc):
        def prune_out_channels(self, layer: L.FeatureTokens, idxs):
            keep = [i for i in range(layer.dim) if i not in set(idxs)]
            layer.weight = self._prune_parameter_and_grad(layer.weight, keep, 1)
            layer.bias = self._prune_parameter_and_grad(layer.bias, keep, 1)
            return layer

        def prune_in_channels(self, layer, idxs):
            return layer

        def get_out_channels(self, layer):
            return layer.dim

        def get_in_channels(self, layer):
            return layer.num_features

    return FeatureTokensPruner()


def _site_hook(site_fns: dict, name: str):
    def hook(module, args, output) -> None:
        if isinstance(output, torch.Tensor) and output.grad_fn is not None:
            site_fns.setdefault(output.grad_fn, name)
    return hook


def is_depthwise(conv: nn.Conv2d) -> bool:
    return conv.groups > 1 and conv.groups == conv.in_channels == conv.out_channels
