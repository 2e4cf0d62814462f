"""What every fusion pass shares: the pass registry and the log a pass writes its changes to.

A pass sees the model as *chains*: runs of modules where each one's output feeds only the
next (an ``nn.Sequential``'s children, or a single-user path in a torch.fx graph). It
returns the new list of items for a chain and says, in the log, what it changed and what
it left alone and why. Where the chains come from (layer-spec tree or fx graph) is
``chain.py``'s business; a pass never needs to know. Passes never change a module in place: they put new modules
in the chain, so a module object that also sits elsewhere keeps working there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from torch import nn

from trimnet.errors import ConfigError, ModelError
from trimnet.registry import Registry


class FuseError(ModelError):
    """A fusion pass whose result does not compute what the model computed."""


@dataclass
class Item:
    """One module in a chain, with the shapes it saw on the example input."""

    name: str  # where it lives: a dotted path in the module tree (or the fx target)
    module: nn.Module
    in_shape: tuple[int, ...] | None = None  # None: not seen, or seen with several shapes
    out_shape: tuple[int, ...] | None = None

    @property
    def kind(self) -> str:
        return type(self.module).__name__


@dataclass
class Chain:
    items: list[Item]
    # why the first item's input is not its own (it also feeds a residual shortcut, ...); None if it is
    shared_input: str | None = None


@dataclass
class Change:
    kind: str  # "fold", "merge", "remove", "fuse", "pack"
    layers: list[str]  # the layers involved, as named before the pass
    into: str | None  # the layer that holds the result (None when removed)
    what: str  # e.g. "Conv2d + BatchNorm2d -> Conv2d (bias added)"

    def to_dict(self) -> dict:
        return {"kind": self.kind, "layers": self.layers, "into": self.into, "what": self.what}


@dataclass
class Skip:
    layer: str
    reason: str

    def to_dict(self) -> dict:
        return {"layer": self.layer, "reason": self.reason}


@dataclass
class PassLog:
    changes: list[Change] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)

    def change(self, kind: str, layers: list[str], into: str | None, what: str) -> None:
        self.changes.append(Change(kind, layers, into, what))

    def skip(self, layer: str, reason: str) -> None:
        self.skipped.append(Skip(layer, reason))


ChainFn = Callable[[Chain, PassLog], list[Item]]


@dataclass(frozen=True)
class FusePass:
    name: str
    summary: str
    apply: ChainFn  # (chain, log) -> the chain's new items


PASSES: Registry[FusePass] = Registry("fusion pass", ConfigError)
# the order ``fuse`` runs them in by default: dropout first frees linear chains for merging,
# BN folding before merging lets a conv-bn-conv1x1 run merge into one conv; activations fuse
# last, since the other passes match plain Conv2d and Linear layers
DEFAULT_PASSES = ("drop_identity", "bn_fold", "linear_merge", "act_fuse")


def register_pass(name: str, summary: str) -> Callable[[ChainFn], ChainFn]:
    def add(fn: ChainFn) -> ChainFn:
        PASSES.register(name)(FusePass(name, summary, fn))
        return fn

    return add
