"""Operator-level counting: which aten operators ran, and which module ran each one.

A ``TorchDispatchMode`` sees every operator after autograd and decomposition, whichever way
the model called it (``nn.Conv2d``, ``F.conv2d``, ``x @ w``, ``einsum``, ``+``). Global
forward pre/post hooks, filtered to the model's modules, keep a stack of the modules
running, so a count goes to the innermost one. For backward, the autograd nodes a module's forward created are mapped to
it as the forward runs, and each backward operator goes to the module of the node that
autograd is executing (``torch._C._current_autograd_node``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from trimnet.profile import formulas
from trimnet.profile.memory import Allocation


@dataclass
class Tally:
    """What one module (its own operators, not its children's) or one operator did."""

    calls: int = 0
    macs: int = 0
    flops: int = 0
    backward_calls: int = 0
    backward_macs: int = 0
    backward_flops: int = 0
    input_bytes: int = 0
    output_bytes: int = 0
    ops: int = 0  # forward operators that moved data or did work


@dataclass
class Frame:
    name: str
    module: nn.Module
    input_shapes: list = field(default_factory=list)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in nested tuples, lists and dicts (operator arguments and module outputs)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [t for v in value for t in tensors_in(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in tensors_in(v)]
    if hasattr(value, "__dataclass_fields__") or hasattr(value, "_fields"):  # dataclass / namedtuple outputs
        return [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]
    return []


def shapes_of(value: Any) -> list[tuple[int, ...]]:
    return [tuple(t.shape) for t in tensors_in(value)]


def storage_key(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError):  # sparse and other storage-less layouts
        return id(t)


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


# metadata queries (prim.device, ...) that fake tensors route through the dispatcher
_METADATA = {"prim"}


class Recorder:
    """Collects counts per module and per operator, and the allocation trace."""

    def __init__(self, model: nn.Module, weight_storages: set[int]):
        self.names: dict[int, str] = {id(m): name for name, m in model.named_modules()}
        self.modules: dict[str, nn.Module] = {name: m for name, m in model.named_modules()}
        self.weights = weight_storages
        self.stack: list[Frame] = []
        self.order: list[str] = []
        self.per_module: dict[str, Tally] = {}
        self.per_op: dict[str, Tally] = {}
        self.uncounted: Counter[str] = Counter()
        self.output_shapes: dict[str, tuple[int, ...]] = {}
        self.data_dependent: list[tuple[str, str]] = []
        self.node_owner: dict[Any, str] = {}
        self.paused = False
        # allocation trace
        self.step = 0
        self.allocations: list[Allocation] = []
        self.live: dict[int, Allocation] = {}
        self._handles: list = []

    # ---------------------------------------------------------------- module tracking

    def attach(self) -> None:
        # Global hooks, filtered to this model's modules: hooks on the modules themselves would
        # switch off fused fast paths (nn.TransformerEncoderLayer checks for them) and change
        # what runs.
        self._handles.append(register_module_forward_pre_hook(self._enter))
        self._handles.append(register_module_forward_hook(self._leave, with_kwargs=True))

    def detach(self) -> None:
        from torch.nn.modules import module as torch_module

        for h in self._handles:
            h.remove()
            # RemovableHandle forgets the with_kwargs flag of a global hook; left behind, it keeps
            # every later module call in this process on the slow, hooked path
            torch_module._global_forward_hooks_with_kwargs.pop(h.id, None)
        self._handles.clear()

    def current(self) -> str:
        return self.stack[-1].name if self.stack else ""

    def _enter(self, module: nn.Module, args: tuple) -> None:
        name = self.names.get(id(module))
        if name is None:  # not part of this model (another model, or one made inside forward)
            return
        if torch.is_grad_enabled():
            self._claim(args, self.current())  # nodes made before this call are the caller's
        self.stack.append(Frame(name, module, shapes_of(args)))
        if name not in self.per_module:
            self.per_module[name] = Tally()
            self.order.append(name)
        self.per_module[name].calls += 1

    def _leave(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        name = self.names.get(id(module))
        if name is None:
            return
        if torch.is_grad_enabled():
            self._claim(output, name)
        shapes = shapes_of(output)
        if shapes and name not in self.output_shapes:
            self.output_shapes[name] = shapes[0]
        if self.stack and self.stack[-1].name == name:
            self.stack.pop()

    def _claim(self, value: Any, owner: str) -> None:
        """Map the autograd nodes behind ``value`` that no module claimed yet to ``owner``."""
        todo = [t.grad_fn for t in tensors_in(value) if t.grad_fn is not None]
        while todo:
            node = todo.pop()
            if node is None or node in self.node_owner:
                continue
            self.node_owner[node] = owner
            todo.extend(n for n, _ in node.next_functions)

    # ---------------------------------------------------------------- operators

    def record(self, func: Any, args: tuple, kwargs: dict, out: Any) -> None:
        backward = torch._C._current_graph_task_id() != -1
        if backward:
            node = torch._C._current_autograd_node()
            owner = self.node_owner.get(node, "") if node is not None else ""
        else:
            owner = self.current()
        name = str(func._overloadpacket)  # "aten.convolution"
        aten = formulas.aten_name(func)
        counted = formulas.count(func, args, kwargs, out)
        if counted is None:
            self.uncounted[name] += 1
            counted = (0, 0)
        if aten in formulas.DATA_DEPENDENT:
            self.data_dependent.append((name, owner))
        macs, flops = counted
        mod = self.per_module.setdefault(owner, Tally())
        op = self.per_op.setdefault(name, Tally())
        for t in (mod, op):
            if backward:
                t.backward_calls += 1
                t.backward_macs += macs
                t.backward_flops += flops
            else:
                t.macs += macs
                t.flops += flops
        op.calls += not backward
        if func.is_view or aten in formulas.VIEW_LIKE:
            return
        read, written = self._trace(args, kwargs, out)
        if not backward:
            mod.ops += 1
            mod.input_bytes += read
            mod.output_bytes += written

    def _trace(self, args: tuple, kwargs: dict, out: Any) -> tuple[int, int]:
        """Update the allocation trace; return the activation bytes read and written."""
        self.step += 1
        read = written = 0
        inputs: set[int] = set()
        for t in tensors_in((args, kwargs)):
            key = storage_key(t)
            inputs.add(key)
            if key in self.weights:
                continue
            read += _nbytes(t)
            alloc = self.live.get(key)
            if alloc is not None:
                alloc.end = max(alloc.end, self.step)
        seen: set[int] = set()
        for t in tensors_in(out):
            written += _nbytes(t)
            key = storage_key(t)
            if key in self.weights or key in seen:
                continue
            seen.add(key)
            if key in inputs:  # written in place
                continue
            self.add_allocation(t, key)
        return read, written

    def add_allocation(self, t: torch.Tensor, key: int | None = None, end: int | None = None) -> None:
        key = storage_key(t) if key is None else key
        try:
            nbytes = t.untyped_storage().nbytes()
        except (RuntimeError, NotImplementedError):
            nbytes = _nbytes(t)
        alloc = Allocation(self.step, self.step if end is None else end, nbytes)
        self.allocations.append(alloc)
        self.live[key] = alloc

    def hold(self, value: Any) -> None:
        """Keep the allocations behind ``value`` live to the end (the caller holds them)."""
        for t in tensors_in(value):
            alloc = self.live.get(storage_key(t))
            if alloc is not None:
                alloc.end = 1 << 62


class CountingMode(TorchDispatchMode):
    """Hands every aten operator call to a ``Recorder``."""

    def __init__(self, recorder: Recorder):
        super().__init__()
        self.recorder = recorder

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        rec = self.recorder
        if rec.paused or func.namespace in _METADATA:
            return func(*args, **kwargs)
        if not formulas.known(func):
            with self:  # an operator with a decomposition is counted by its pieces
                decomposed = func.decompose(*args, **kwargs)
            if decomposed is not NotImplemented:
                return decomposed
        out = func(*args, **kwargs)
        rec.record(func, args, kwargs, out)
        return out
