"""Errors of exporting and running models on inference runtimes (``ExportError`` itself is
defined in ``trimnet.errors`` and re-exported here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from trimnet.errors import ExportError, TrimnetError

if TYPE_CHECKING:  # pragma: no cover
    from trimnet.runtime.parity import ParityReport


class ParityError(ExportError):
    """An exported or compiled model whose outputs differ from PyTorch beyond the tolerance."""

    def __init__(self, message: str, report: "ParityReport"):
        super().__init__(message)
        self.report = report


class BackendUnavailableError(TrimnetError):
    """A known backend that cannot run here (no CUDA device, no C++ compiler, ...)."""
