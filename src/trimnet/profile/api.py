"""``profile(model, inputs)``: run the model once under the counter and build a ``Profile``.

The run uses fake tensors (``FakeTensorMode``): every operator computes its output's shape
and dtype but no values, so profiling BERT-base or VGG-16 takes a fraction of a second and
no activation memory. Real tensors give the same counts (tested); they are used when asked
(``fake=False``), when the model reads tensor values, and by default for tiny workloads,
where doing the arithmetic costs less than fake tensors' per-operator overhead. Either way
the user's model is left as it was: parameters and buffers are swapped for copies
(``torch.func.functional_call``), and train/eval modes are restored.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from trimnet.errors import ConfigError, ModelError
from trimnet.profile.counter import CountingMode, Frame, Recorder, shapes_of, storage_key, tensors_in
from trimnet.profile.memory import bytes_by_dtype, own_bytes, peak_bytes
from trimnet.profile.result import LayerProfile, OperatorProfile, Profile

Inputs = Any  # a tensor, a tuple of positional inputs, a dict of keyword inputs, or a shape


@dataclass(frozen=True)
class _Shape:
    """An input given only by its shape: filled with random values only when run for real."""

    shape: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    def real(self) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)
        return torch.randn(self.shape, generator=g, dtype=self.dtype).to(self.device)


class _FakeUnsupported(Exception):
    """Fake tensors cannot run this model (it reads values); rerun with real ones."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def profile(model: nn.Module, inputs: Inputs = None, *, input_shape: Sequence[int] | None = None,
            training: bool = False, fake: bool | None = None) -> Profile:
    """Count MACs, FLOPs, parameters and bytes of ``model`` on ``inputs``, per layer and operator.

    ``inputs``: a tensor, a tuple/list of positional inputs, a dict of keyword inputs, or a
    shape such as ``(1, 3, 224, 224)`` (also ``input_shape=``); a spec-built model with an
    ``in_shape`` needs none (batch 1). ``training=True`` counts the backward operators
    autograd runs too. ``fake``: True runs on fake tensors (no arithmetic, no activation
    memory), False on real ones (same counts); None (default) picks fake unless the workload
    is tiny (see ``TINY``).
    """
    if not isinstance(model, nn.Module):
        raise ModelError(f"profile needs a torch.nn.Module; got {type(model).__name__}")
    args, kwargs = _normalize_inputs(model, inputs, input_shape)
    if fake is None:
        fake = not _is_tiny(model, args, kwargs)
    notes: list[str] = []
    with _quiet_fake_tensor_log():
        if fake:
            try:
                return _profile(model, args, kwargs, training, fake=True, notes=notes)
            except _FakeUnsupported as why:
                notes.append(f"the model reads tensor values ({why.reason}), so it was run with real tensors; "
                             "its work may depend on the input, and these counts are for this input")
        return _profile(model, args, kwargs, training, fake=False, notes=notes)


@contextlib.contextmanager
def _quiet_fake_tensor_log():
    """FakeTensorMode logs a traceback for every shape error; ours is the one-line ModelError."""
    logger = logging.getLogger("torch._subclasses.fake_tensor")
    drop = logging.Filter("(none)")  # a filter whose name matches no record: drops them all
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


# ---------------------------------------------------------------- inputs

def _normalize_inputs(model: nn.Module, inputs: Inputs, input_shape: Sequence[int] | None) -> tuple[tuple, dict]:
    dtype, device = _param_dtype_device(model)
    if inputs is not None and input_shape is not None:
        raise ConfigError("pass example inputs or input_shape, not both")
    if inputs is None and input_shape is None:
        in_shape = getattr(model, "in_shape", None)
        if not in_shape:
            raise ConfigError(f"{type(model).__name__} has no in_shape; pass example inputs or input_shape")
        input_shape = (1, *in_shape)
    if input_shape is not None:
        inputs = tuple(input_shape)
    if isinstance(inputs, torch.Size) or (isinstance(inputs, (tuple, list)) and inputs
                                          and all(isinstance(d, int) for d in inputs)):
        shape = tuple(int(d) for d in inputs)
        if any(d < 1 for d in shape):
            raise ConfigError(f"input shape {shape} must be positive integers")
        return (_Shape(shape, dtype, device),), {}
    if isinstance(inputs, torch.Tensor):
        return (inputs,), {}
    if isinstance(inputs, Mapping):
        return (), dict(inputs)
    if isinstance(inputs, (tuple, list)):
        return tuple(inputs), {}
    raise ConfigError(f"example inputs must be a tensor, a tuple of tensors, a dict or a shape; "
                      f"got {type(inputs).__name__}")


# Parameters x input elements at or under this run with real tensors by default. The product
# bounds the multiply-accumulates of conv and linear layers (each weight is used at most once
# per input position), so the real arithmetic is at most ~0.1 GMAC: less than fake tensors'
# ~0.1-0.3 ms per operator for the few-layer models under it (mlp, cnn, lenet5). Anything
# larger stays fake, which is also steadier on a loaded machine: one Python thread, no
# arithmetic, no intra-op threads waiting on a core.
TINY = 1e8


def _is_tiny(model: nn.Module, args: tuple, kwargs: dict) -> bool:
    elements = 0
    for v in (*args, *kwargs.values()):
        if isinstance(v, _Shape):
            elements += math.prod(v.shape)
        else:
            elements += sum(t.numel() for t in tensors_in(v))
    return sum(p.numel() for p in model.parameters()) * elements <= TINY


def _param_dtype_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype, p.device
    return torch.get_default_dtype(), torch.device("cpu")


def _materialize(value: Any, convert) -> Any:
    if isinstance(value, _Shape):
        return convert(value)
    if isinstance(value, torch.Tensor):
        return convert(value)
    if isinstance(value, tuple):
        return tuple(_materialize(v, convert) for v in value)
    if isinstance(value, list):
        return [_materialize(v, convert) for v in value]
    if isinstance(value, dict):
        return {k: _materialize(v, convert) for k, v in value.items()}
    return value


# ---------------------------------------------------------------- the run

def _fake_errors() -> tuple[type[BaseException], ...]:
    from torch._subclasses import fake_tensor as ft

    names = ("DataDependentOutputException", "DynamicOutputShapeException", "UnsupportedOperatorException",
             "UnsupportedFakeTensorException", "MetadataMismatchError")
    errors: list[type[BaseException]] = [NotImplementedError]
    errors += [getattr(ft, n) for n in names if hasattr(ft, n)]
    try:
        from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

        errors.append(GuardOnDataDependentSymNode)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errors)


def _profile(model: nn.Module, args: tuple, kwargs: dict, training: bool, *, fake: bool,
             notes: list[str]) -> Profile:
    modes = {m: m.training for m in model.modules()}
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    with contextlib.ExitStack() as stack:
        if fake:
            from torch._subclasses.fake_tensor import FakeTensorMode

            mode = FakeTensorMode()

            def convert(v):
                if isinstance(v, _Shape):
                    with mode:
                        return torch.empty(v.shape, dtype=v.dtype, device=v.device)
                return _fake_like(mode, v)

            state = {k: _fake_like(mode, v) for k, v in {**params, **buffers}.items()}
        else:
            def convert(v):
                return v.real() if isinstance(v, _Shape) else v

            state = {k: v.detach().requires_grad_(v.requires_grad) for k, v in params.items()}
            state.update({k: v.clone() for k, v in buffers.items()})  # running stats stay untouched
        run_args = _materialize(args, convert)
        run_kwargs = _materialize(kwargs, convert)
        recorder = Recorder(model, {storage_key(v) for v in state.values()})
        for t in tensors_in((run_args, run_kwargs)):
            recorder.add_allocation(t, end=1 << 62)  # the caller holds its inputs throughout
        if fake:
            stack.enter_context(mode)
        stack.callback(lambda: [m.train(t) for m, t in modes.items()])
        stack.callback(recorder.detach)
        model.train(training)
        recorder.attach()
        stack.enter_context(CountingMode(recorder))
        try:
            with torch.set_grad_enabled(training):
                out = torch.func.functional_call(model, state, run_args, run_kwargs, tie_weights=True)
        except _fake_errors() as exc:
            if fake:
                raise _FakeUnsupported(_first_line(exc)) from None
            raise _shape_error(recorder, run_args, run_kwargs, exc) from None
        except (RuntimeError, ValueError, IndexError, TypeError, AssertionError) as exc:
            raise _shape_error(recorder, run_args, run_kwargs, exc) from None
        recorder.hold(out)
        if training:
            _backward(recorder, out, notes)
    return _build(model, recorder, run_args, run_kwargs, out, training, fake, notes)


def _fake_like(mode, t: torch.Tensor) -> torch.Tensor:
    """A fake tensor with ``t``'s shape, strides, dtype, device and requires_grad; no data copied.

    Built from a meta tensor: ``FakeTensorMode.from_tensor`` describes the real tensor in full
    (storage, views, autograd history), which costs more than the forward pass of a small model.
    """
    if t.is_sparse or t.is_nested or type(t) not in (torch.Tensor, nn.Parameter):
        return mode.from_tensor(t)
    meta = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype, device="meta")
    fake = mode.fake_tensor_converter.from_meta_and_device(mode, meta, t.device)
    return fake.requires_grad_(t.requires_grad) if t.is_floating_point() or t.is_complex() else fake


def _backward(recorder: Recorder, out: Any, notes: list[str]) -> None:
    roots = [t for t in tensors_in(out) if t.requires_grad]
    if not roots:
        notes.append("no output depends on a trainable parameter, so there is no backward pass to count")
        return
    recorder.paused = True
    grads = [torch.ones_like(t) for t in roots]  # d(sum of outputs): no loss operators counted
    recorder.paused = False
    torch.autograd.backward(roots, grads)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _fmt(shapes: list[tuple[int, ...]]) -> str:
    return ", ".join("(" + ", ".join(str(d) for d in s) + ")" for s in shapes) or "no tensors"


def _expects(module: nn.Module) -> str:
    """What a layer needs of its input, where its attributes say so."""
    for attr, what in (("in_features", "last dimension"), ("in_channels", "channels"),
                       ("num_features", "features (dim 1)"), ("normalized_shape", "trailing shape"),
                       ("embed_dim", "embedding size")):
        value = getattr(module, attr, None)
        if value is not None:
            return f"; it expects {what} {tuple(value) if isinstance(value, (tuple, list)) else value}"
    return ""


def _shape_error(recorder: Recorder, args: tuple, kwargs: dict, exc: BaseException) -> ModelError:
    given = _fmt(shapes_of((args, kwargs)))
    frame: Frame | None = recorder.stack[-1] if recorder.stack else None
    if frame is None:
        return ModelError(f"the model failed on input {given}: {type(exc).__name__}: {_first_line(exc)}")
    where = f"layer {frame.name!r}" if frame.name else "the model's own forward"
    return ModelError(
        f"input {given} does not fit the model: {where} ({type(frame.module).__name__}) got "
        f"{_fmt(frame.input_shapes)}{_expects(frame.module)}: {_first_line(exc)}"
    )


# ---------------------------------------------------------------- assembling the Profile

def _build(model: nn.Module, rec: Recorder, args: tuple, kwargs: dict, out: Any, training: bool, fake: bool,
           notes: list[str]) -> Profile:
    layers = []
    for name in rec.order:
        module = rec.modules.get(name)
        tally = rec.per_module[name]
        if module is None:
            continue
        is_leaf = next(module.children(), None) is None
        if not (is_leaf or tally.ops or tally.flops or tally.backward_flops):
            continue
        layers.append(LayerProfile(
            name=name,
            type=type(module).__name__,
            output_shape=rec.output_shapes.get(name),
            params=sum(p.numel() for p in module.parameters(recurse=False)),
            macs=tally.macs,
            flops=tally.flops,
            weight_bytes=own_bytes(module) * tally.calls,
            input_bytes=tally.input_bytes,
            output_bytes=tally.output_bytes,
            calls=tally.calls,
            backward_macs=tally.backward_macs,
            backward_flops=tally.backward_flops,
        ))
    operators = {name: OperatorProfile(name, t.calls, t.macs, t.flops, t.backward_calls, t.backward_macs,
                                       t.backward_flops) for name, t in rec.per_op.items()}
    modules = {name: (t.macs, t.flops, t.backward_macs, t.backward_flops) for name, t in rec.per_module.items()
               if t.macs or t.flops or t.backward_macs or t.backward_flops}
    if rec.data_dependent and not notes:  # (a fallback to real tensors has said so already)
        ops = sorted({f"{op} in {where or '(model)'}" for op, where in rec.data_dependent})
        notes.append(f"the model reads tensor values ({', '.join(ops[:3])}); its work may depend on the input "
                     "and these counts are for what ran on this one")
    if training:
        notes.append("backward counts the operators autograd ran for d(sum of outputs); the loss and the "
                     "optimizer step are not included")
    inputs = tensors_in((args, kwargs))
    outputs = tensors_in(out)
    params = list(model.parameters())
    first = inputs[0] if inputs else None
    return Profile(
        model=str(getattr(model, "arch", "") or type(model).__name__),
        inputs=shapes_of(inputs),
        batch=int(first.shape[0]) if first is not None and first.dim() > 0 else 1,
        training=training,
        tensors="fake" if fake else "real",
        macs=sum(t.macs for t in rec.per_module.values()),
        flops=sum(t.flops for t in rec.per_module.values()),
        params=sum(p.numel() for p in params),
        trainable_params=sum(p.numel() for p in params if p.requires_grad),
        backward_macs=sum(t.backward_macs for t in rec.per_module.values()),
        backward_flops=sum(t.backward_flops for t in rec.per_module.values()),
        layers=layers,
        operators=operators,
        uncounted=dict(sorted(rec.uncounted.items())),
        param_bytes=bytes_by_dtype(params),
        buffer_bytes=bytes_by_dtype(list(model.buffers())),
        peak_activation_bytes=peak_bytes(rec.allocations, rec.step + 1),
        input_bytes=sum(t.numel() * t.element_size() for t in inputs),
        output_bytes=sum(t.numel() * t.element_size() for t in outputs),
        outputs=shapes_of(outputs),
        notes=notes,
        modules=modules,
    )
