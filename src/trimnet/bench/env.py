"""The environment a measurement ran in, and the thread pinning every backend shares."""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib.metadata
import os
import platform
from pathlib import Path
from typing import Iterator

import torch

# CPU features that decide which kernels the runtimes pick
_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_int8", "asimd",
          "sve")
_PACKAGES = ("trimnet", "torch", "numpy", "onnx", "onnxscript", "onnxruntime", "openvino")


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[int]:
    """torch's intra-op pool at ``threads`` for the block (the other runtimes take it as an option)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def describe_environment(threads: int | None = None) -> dict:
    """Threads, versions, CPU and GPU: what a reader needs to compare two result files."""
    return {
        "threads": threads if threads is not None else torch.get_num_threads(),
        "cpu": describe_cpu(),
        "gpu": describe_gpu(),
        "versions": {"python": platform.python_version(), **package_versions()},
        "platform": platform.platform(),
        "load_average": load_average(),  # other work on the machine: read timings against it
        "torch_global_hooks": torch_global_hooks(),
        "env": {k: os.environ[k] for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "CI") if k in os.environ},
        "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def torch_global_hooks() -> bool:
    """Whether global module hooks are registered: every nn.Module call then takes torch's slow path.

    torch 2.x leaves a flag behind when a global forward hook registered ``with_kwargs`` is
    removed, so a profiler that ran earlier in the process can slow eager calls for good.
    """
    from torch.nn.modules import module

    check = getattr(module, "_has_any_global_hook", None)
    return bool(check()) if check is not None else False


def load_average() -> list[float] | None:
    """1, 5 and 15 minute run-queue averages (None where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def describe_cpu() -> dict:
    info = _cpuinfo()
    flags = set((info.get("flags") or info.get("Features") or "").split())
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"name": info.get("model name") or platform.processor() or platform.machine(),
            "logical_cores": os.cpu_count(), "usable_cores": usable, "flags": [f for f in _FLAGS if f in flags]}


def _cpuinfo() -> dict[str, str]:
    """The first value of each key of /proc/cpuinfo (empty where there is none)."""
    out: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def describe_gpu() -> dict | None:
    if not torch.cuda.is_available():
        return None
    return {"name": torch.cuda.get_device_name(0), "count": torch.cuda.device_count(),
            "cuda": torch.version.cuda}


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing heavy is imported)."""
    return {name: package_version(name) for name in _PACKAGES}


def package_version(name: str) -> str | None:
    """One installed package's version from its metadata, or None when it is not installed."""
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
