"""``fuse(model)``: run the fusion passes on a copy, checking the outputs after each one."""

from __future__ import annotations

import copy
import time
from typing import Any, Sequence

import torch
from torch import nn

from trimnet.errors import ConfigError
from trimnet.optimize.fuse import chain as C
from trimnet.optimize.fuse.base import DEFAULT_PASSES, PASSES, PassLog
from trimnet.optimize.fuse.check import Inputs, compare, outputs, require
from trimnet.optimize.fuse.record import FuseRecord, FuseResult, PassRecord


def fuse(
    model: Any,
    passes: Sequence[str] | None = None,
    *,
    example_inputs: torch.Tensor | None = None,
    inputs: torch.Tensor | None = None,
) -> FuseResult:
    """Fold BatchNorm, merge linear chains and drop no-ops in a copy of ``model`` (eval mode).

    ``model``: an ``nn.Module``, an ``Artifact`` or a run directory. A layer-spec model
    stays a ``SpecNet`` (it saves as a spec); any other module is traced with torch.fx and
    comes back as a ``GraphModule``. After each pass the outputs on ``example_inputs``
    (default: seeded random inputs of the model's ``in_shape``) and on the real ``inputs``
    (up to 64), if given, must match the model before the pass within 1e-5 of their scale; otherwise
    ``FuseError`` is raised. The input model is never changed.
    """
    from trimnet.artifact import resolve_model
    from trimnet.models.spec import is_describable

    resolved = resolve_model(model, verb="fuse", adapt=True)
    module, in_shape = resolved.module, resolved.in_shape
    names = list(DEFAULT_PASSES if passes is None else passes)
    chosen = [PASSES.get(_known_pass(n)) for n in names]
    checks = _check_inputs(module, in_shape, example_inputs, inputs)
    work = copy.deepcopy(module)
    _eval(work)
    encoder = _encoder_note(work)
    if encoder:
        return _unchanged(module, work, checks, encoder)
    spec_tree = is_describable(work)
    if not spec_tree:
        work = C.trace(work)
    before_all, params_before = C.leaf_counts(work), _params(work)
    records = []
    reference, shapes = outputs(work, checks)
    original = reference
    for p in chosen:
        start = time.perf_counter()
        log = PassLog()
        counts = C.leaf_counts(work)
        if spec_tree:
            for seq, chain in C.tree_chains(work, shapes):
                new = p.apply(chain, log)
                if not C.same_items(chain.items, new):
                    C.set_children(seq, [item.module for item in new])
        else:
            for path, chain in C.graph_chains(work, shapes):
                new = p.apply(chain, log)
                if not C.same_items(chain.items, new):
                    C.rewire(work, path, new)
            C.finish_graph(work)
        after, shapes = outputs(work, checks)
        check = compare(reference, after, checks)
        require(check, p.name)
        reference = after
        records.append(PassRecord(p.name, log.changes, log.skipped, counts, C.leaf_counts(work), check,
                                  time.perf_counter() - start))
    overall = compare(original, reference, checks)
    require(overall, "+".join(p.name for p in chosen) or "(none)")
    record = FuseRecord(mode="layer spec" if spec_tree else "torch.fx", passes=records, layers_before=before_all,
                        layers_after=C.leaf_counts(work), params_before=params_before, params_after=_params(work),
                        check=overall)
    return FuseResult(model=work, record=record)


def _encoder_note(model: nn.Module) -> str | None:
    """Why a transformer encoder (a model family with attention sites) has nothing to fuse here."""
    from trimnet.models.families import family_of

    family = family_of(model)
    if not family.attention(model):
        return None
    return (f"{family.name} encoder: nothing to fuse in PyTorch (no batch norm to fold, no two linear layers "
            f"in a row, dropout already off in eval); onnxruntime and OpenVINO fuse its attention, GELU and "
            f"LayerNorm when they load the exported model")


def _unchanged(module: nn.Module, work: nn.Module, checks: Inputs, mode: str) -> FuseResult:
    reference, _ = outputs(module, checks)
    after, _ = outputs(work, checks)
    counts, params = C.leaf_counts(work), _params(work)
    return FuseResult(model=work, record=FuseRecord(mode=mode, passes=[], layers_before=counts, layers_after=counts,
                                                    params_before=params, params_after=params,
                                                    check=compare(reference, after, checks)))


def list_passes() -> list[str]:
    return list(DEFAULT_PASSES) + [n for n in PASSES.names() if n not in DEFAULT_PASSES]


def _known_pass(name: str) -> str:
    if name not in PASSES:
        raise ConfigError(f"unknown fusion pass {name!r}; choose from: {', '.join(list_passes())}")
    return name


def _check_inputs(model: nn.Module, in_shape: tuple[int, ...] | None, example_inputs: torch.Tensor | None,
                  inputs: torch.Tensor | None) -> Inputs:
    if example_inputs is None:
        if not in_shape and not hasattr(model, "sample_inputs"):
            raise ConfigError(f"pass example_inputs: {type(model).__name__} does not record its input shape")
        g = torch.Generator().manual_seed(0)
        example_inputs = (model.sample_inputs(2, g) if hasattr(model, "sample_inputs")
                          else torch.randn((2, *in_shape), generator=g))
    checks = [(f"example batch {len(example_inputs)}", torch.as_tensor(example_inputs).float())]
    if inputs is not None:
        real = torch.as_tensor(inputs)[:64].float()  # the check is algebra: a few real samples add their scale
        checks.append((f"given batch {len(real)}", real))
    return checks


def _eval(model: nn.Module) -> None:
    try:
        model.eval()
    except NotImplementedError:
        pass  # a torch.export program: traced in eval mode already, and it refuses mode changes


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
