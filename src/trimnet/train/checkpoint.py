"""Checkpoints: model, optimizer, RNG state and position in the data, written atomically.

``torch.save`` writes them and ``torch.load(weights_only=True)`` reads them back, so
loading a checkpoint never executes pickled code.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from trimnet.errors import ArtifactError
from trimnet.files import atomic_write, clean_stale

LAST = "last.pt"


def save_checkpoint(directory: Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    path = Path(directory) / LAST
    clean_stale(directory, (LAST,))  # one writer per run: any other temporary file is a killed write's
    atomic_write(path, buf.getvalue())
    return path


def load_checkpoint(directory: Path) -> dict[str, Any] | None:
    path = Path(directory) / LAST
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a damaged zip surfaces as RuntimeError, EOFError, UnpicklingError...
        raise ArtifactError(f"{path} is truncated or corrupt ({type(exc).__name__}); "
                            "delete it to restart training from scratch") from None
