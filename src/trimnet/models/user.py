"""A user's own model: ``--model path/to/file.py:function`` or ``--model package.module:function``.

The function is called with ``in_shape`` (no batch) and ``num_classes`` when it takes them
(by those names, or ``**kwargs``), plus the model options, and must return an ``nn.Module``.
The module keeps the reference as its ``arch``, so the run directory records where it came
from. Saving never pickles it: a module built of spec layers is stored as spec + weights
and rebuilt exactly; any other is stored as a ``torch.export`` program (deployable, loads
without importing the user's file) plus the reference, options and safetensors weights, so
``load_artifact(path, rebuild=True)`` (what ``trimnet run``/``optimize``/``prune`` use)
imports the file again and gets a trainable module back.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from trimnet.errors import ModelError


def is_reference(name: str) -> bool:
    """``file.py:function`` or ``module:function`` (zoo names never hold a colon)."""
    left, sep, right = name.rpartition(":")
    return bool(sep and left and right and right.isidentifier())


def resolve(reference: str) -> Callable[..., Any]:
    """The function a reference names; a ``ModelError`` that says what is wrong and how to write it."""
    left, _, attr = reference.rpartition(":")
    if left.endswith(".py") or "/" in left or "\\" in left:
        module = _load_file(Path(left), reference)
    else:
        try:
            module = importlib.import_module(left)
        except ImportError as exc:
            raise ModelError(f"--model {reference}: cannot import {left!r} ({exc}); pass a file "
                             "(path/to/file.py:function) or a module on PYTHONPATH (package.module:function)") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        found = sorted(n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                       and getattr(v, "__module__", None) == module.__name__)
        raise ModelError(f"--model {reference}: {left} has no function {attr!r}"
                         + (f"; it defines {', '.join(found[:8])}" if found else ""))
    return fn


def _load_file(path: Path, reference: str):
    if not path.is_file():
        raise ModelError(f"--model {reference}: {path} does not exist; pass path/to/file.py:function")
    path = path.resolve()
    # one module per file (its path hashed into the name), so two files named models.py do not clash
    name = f"trimnet_user_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:8]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))  # the file's own imports of its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # the user's code: any error, named with its first line
        raise ModelError(f"--model {reference}: importing {path.name} failed: "
                         f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    finally:
        sys.path.remove(str(path.parent))
    sys.modules[name] = module
    return module


def create(reference: str, in_shape: Sequence[int], num_classes: int, **options) -> nn.Module:
    """Call the referenced function with what it accepts of in_shape/num_classes and ``options``."""
    fn = resolve(reference)
    params = inspect.signature(fn).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    kwargs = dict(options)
    for key, value in (("in_shape", tuple(in_shape)), ("num_classes", num_classes)):
        if (key in params or takes_all) and key not in kwargs:
            kwargs[key] = value
    try:
        inspect.signature(fn).bind(**kwargs)
    except TypeError as exc:
        raise ModelError(f"--model {reference}: cannot call it with {sorted(kwargs)}: {exc}; "
                         "give it in_shape/num_classes parameters or pass --model.options") from None
    model = fn(**kwargs)
    if not isinstance(model, nn.Module):
        raise ModelError(f"--model {reference} returned a {type(model).__name__}; it must return an nn.Module")
    if not isinstance(getattr(model, "arch", None), str):
        model.arch = reference
    for key, value in (("in_shape", tuple(in_shape)), ("num_classes", num_classes)):
        if not hasattr(model, key):  # what passes that need example inputs read (as on zoo models)
            setattr(model, key, value)
    # what save_artifact records so that load_artifact(rebuild=True) can call it again
    model.trimnet_source = {"reference": reference, "options": dict(options)}
    return model
