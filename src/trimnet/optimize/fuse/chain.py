"""The two views a fusion pass works on, both as *chains* of single-consumer modules.

- A layer-spec model (``SpecNet``: ``nn.Sequential`` and ``Residual`` containers over
  standard layers) is changed in place: every ``nn.Sequential`` is one chain, and its
  children are replaced, so the result is still a ``SpecNet`` that saves as a spec.
  Containers are opaque items of their parent's chain; patterns never cross them.
- Any other module is traced with torch.fx; a chain is a path of ``call_module`` nodes in
  which each node's output has exactly one user, the next node. A module called from
  several places, or whose output is used twice, ends a chain there.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from typing import Iterator

import torch
from torch import fx, nn

from trimnet.models.layers import Residual
from trimnet.optimize.fuse.base import Chain, FuseError, Item

Shapes = dict[int, tuple[tuple[int, ...], tuple[int, ...]] | None]


class ShapeRecorder:
    """Records id(module) -> (input shape, output shape) while active; None for a module seen with several."""

    def __init__(self, model: nn.Module):
        self.shapes: Shapes = {}
        self._model = model
        self._handles: list = []

    def _hook(self, module, args, output) -> None:
        key = id(module)
        if not args or not isinstance(args[0], torch.Tensor) or not isinstance(output, torch.Tensor):
            self.shapes[key] = None
            return
        seen = (tuple(args[0].shape), tuple(output.shape))
        self.shapes[key] = seen if self.shapes.get(key, seen) == seen else None

    def __enter__(self) -> "ShapeRecorder":
        self._handles = [m.register_forward_hook(self._hook) for m in self._model.modules() if m is not self._model]
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()


def _item(name: str, module: nn.Module, shapes: Shapes) -> Item:
    seen = shapes.get(id(module))
    return Item(name, module, *(seen if seen else (None, None)))


# -- layer-spec trees -------------------------------------------------------------------------

def tree_chains(model: nn.Module, shapes: Shapes) -> list[tuple[nn.Sequential, Chain]]:
    """Every ``nn.Sequential`` of the tree (the root included) with its children as a chain."""
    out: list[tuple[nn.Sequential, Chain]] = []
    visited: set[int] = set()

    def walk(module: nn.Module, path: str, shared_input: str | None) -> None:
        if id(module) in visited:
            return
        visited.add(id(module))
        if isinstance(module, nn.Sequential):
            children = [(f"{path}.{name}" if path else name, child) for name, child in module.named_children()]
            out.append((module, Chain([_item(p, c, shapes) for p, c in children], shared_input)))
            for p, child in children:
                walk(child, p, None)
        elif isinstance(module, Residual):
            walk(module.body, f"{path}.body", "also feeds the residual shortcut")
            walk(module.shortcut, f"{path}.shortcut", "also feeds the residual body")

    walk(model, "", None)
    return out


def set_children(seq: nn.Sequential, modules: list[nn.Module]) -> None:
    """Replace the children of ``seq`` in place, renumbered 0..n-1 as the spec rebuilds them."""
    seq._modules = OrderedDict((str(i), m) for i, m in enumerate(modules))


# -- torch.fx graphs --------------------------------------------------------------------------

def trace(model: nn.Module) -> fx.GraphModule:
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # fx raises many types (TraceError, TypeError on control flow, ...)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FuseError(f"cannot fuse {type(model).__name__}: it is not a layer-spec model and torch.fx cannot "
                        f"trace it ({first}); build it from trimnet layers or avoid data-dependent control flow") from None
    for attr in ("arch", "in_shape", "num_classes"):
        if hasattr(model, attr):
            setattr(gm, attr, getattr(model, attr))
    return gm


def graph_chains(gm: fx.GraphModule, shapes: Shapes) -> list[tuple[list[fx.Node], Chain]]:
    """Maximal single-user paths of ``call_module`` nodes, each with the nodes it came from."""
    nodes = list(gm.graph.nodes)
    calls = Counter(n.target for n in nodes if n.op == "call_module")
    attrs = [n.target for n in nodes if n.op == "get_attr"]

    def chainable(n: object) -> bool:
        if not isinstance(n, fx.Node) or n.op != "call_module" or calls[n.target] != 1:
            return False
        if len(n.args) != 1 or not isinstance(n.args[0], fx.Node) or n.kwargs:
            return False
        # a module whose parameters are also read directly (self.conv.weight) must stay as it is
        return not any(a == n.target or a.startswith(f"{n.target}.") for a in attrs)

    out: list[tuple[list[fx.Node], Chain]] = []
    taken: set[fx.Node] = set()
    for n in nodes:
        if n in taken or not chainable(n):
            continue
        path = [n]
        while len(path[-1].users) == 1:
            user = next(iter(path[-1].users))
            if not (chainable(user) and user.args[0] is path[-1]):
                break
            path.append(user)
        taken.update(path)
        source = n.args[0]
        others = [u.name for u in source.users if u is not n]
        shared = f"({source.name}) is also used by {', '.join(others)}" if others else None
        chain = Chain([_item(str(p.target), gm.get_submodule(str(p.target)), shapes) for p in path], shared)
        out.append((path, chain))
    return out


def rewire(gm: fx.GraphModule, path: list[fx.Node], items: list[Item]) -> None:
    """Replace the nodes of ``path`` by one ``call_module`` node per item, in order."""
    graph = gm.graph
    for item in items:
        if gm.get_submodule(item.name) is not item.module:
            gm.set_submodule(item.name, item.module)
    last = path[-1]
    with graph.inserting_before(last.next):
        value = path[0].args[0]
        for item in items:
            value = graph.call_module(item.name, (value,))
    last.replace_all_uses_with(value)
    for node in reversed(path):
        graph.erase_node(node)


def finish_graph(gm: fx.GraphModule) -> None:
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()


def same_items(a: list[Item], b: list[Item]) -> bool:
    return len(a) == len(b) and all(x.name == y.name and x.module is y.module for x, y in zip(a, b))


def leaf_counts(model: nn.Module) -> dict[str, int]:
    """Layers by type: every leaf module in the tree (a module used twice counts twice)."""
    counts = Counter(type(m).__name__ for _, m in model.named_modules(remove_duplicate=False)
                     if not any(True for _ in m.children()))
    return dict(sorted(counts.items()))


def iter_leaves(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    for name, m in model.named_modules():
        if not any(True for _ in m.children()):
            yield name, m
