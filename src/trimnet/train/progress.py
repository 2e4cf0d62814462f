"""A per-epoch progress bar that switches itself off when nobody is watching."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator


def progress_enabled(requested: bool = True) -> bool:
    return requested and sys.stderr.isatty() and not os.environ.get("CI")


@contextmanager
def epoch_bar(total: int, description: str, enabled: bool) -> Iterator:
    """Yields ``advance(n)``; a no-op when disabled."""
    if not enabled:
        yield lambda n=1: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1: bar.advance(task, n)
