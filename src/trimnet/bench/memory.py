"""Peak memory while a backend runs: the process's resident-set high-water mark (and CUDA's).

Linux lets a process reset its high-water mark (``/proc/self/clear_refs``), so the peak is
that of the measured runs alone, not of everything the process did before. Where that is
not possible the figure is the process lifetime peak, and ``scope`` says so.
"""

from __future__ import annotations

import resource
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class PeakMemory:
    """Context manager: ``peak_bytes`` and ``delta_bytes`` (above the RSS at entry) after the block."""

    device: str = "cpu"
    scope: str = "process lifetime"
    baseline_bytes: int = 0
    peak_bytes: int | None = None
    delta_bytes: int | None = None
    cuda_peak_bytes: int | None = None

    def __enter__(self) -> "PeakMemory":
        if _reset_high_water_mark():
            self.scope = "measured runs"
        self.baseline_bytes = _status_bytes("VmRSS") or 0
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _status_bytes("VmHWM")
        if peak is None:  # no /proc: ru_maxrss is KiB on Linux, bytes on macOS
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
        self.peak_bytes = peak
        self.delta_bytes = max(0, peak - self.baseline_bytes) if self.baseline_bytes else None
        if self.device.startswith("cuda"):
            self.cuda_peak_bytes = int(torch.cuda.max_memory_allocated())

    def to_dict(self) -> dict:
        return {"peak_rss_bytes": self.peak_bytes, "delta_rss_bytes": self.delta_bytes, "scope": self.scope,
                "cuda_peak_bytes": self.cuda_peak_bytes}


def _reset_high_water_mark() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _status_bytes(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
