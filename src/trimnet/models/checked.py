"""``create_checked``: ``create_model`` for options a user typed, sized before anything is allocated.

``--model.options '{hidden: [-3]}'`` or ``{widths: [1000000]}`` would otherwise fail deep in
torch, or take all memory; the model is first built on the ``meta`` device (no storage),
its parameters counted, and only then built for real.
"""

from __future__ import annotations

from typing import Any, Sequence

from trimnet.errors import ConfigError, TrimnetError

MAX_PARAMS = 1 << 31  # 8 GiB of float32


def create_checked(name: str, in_shape: Sequence[int], num_classes: int, **options: Any):
    import torch

    from trimnet.models import create_model

    shown = f" with options {options}" if options else ""
    try:
        with torch.device("meta"):
            params = sum(p.numel() for p in create_model(name, in_shape, num_classes, **options).parameters())
    except TrimnetError:
        raise
    except (TypeError, ValueError, RuntimeError, KeyError, IndexError, ZeroDivisionError, OverflowError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"model {name!r} cannot be built for inputs {tuple(in_shape)}{shown} ({why}); "
                          "check --model.options (widths and sizes must be positive integers)") from None
    if params > MAX_PARAMS:
        raise ConfigError(f"model {name!r}{shown} has {params:,} parameters (at most {MAX_PARAMS:,}); "
                          "choose smaller --model.options")
    return create_model(name, in_shape, num_classes, **options)
