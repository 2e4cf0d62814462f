"""Progress of a long Python call: every step through ``logging``, and a live status line on a terminal.

``reporter(progress)`` returns a callable taking one message. ``progress`` may be a callable
(the messages go to it, as ``trimnet run`` prints them), ``True`` / ``False`` (the status
line on or off), or ``None``: on when stderr is a terminal and ``CI`` is not set.
``quiet(...)`` hushes the passes' own INFO lines while the search runs them.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager
from typing import Callable, Iterator

log = logging.getLogger("trimnet.optimize")


def wants_bar() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Reporter:
    """Logs every message at INFO; shows the latest with the elapsed time on a terminal."""

    def __init__(self, sink: Callable[[str], None] | None, bar: bool):
        self.sink = sink
        self.started = time.perf_counter()
        self.status = None
        if bar:
            from rich.console import Console

            self.status = Console(stderr=True).status("optimize: starting")
            self.status.start()

    def __call__(self, message: str) -> None:
        if self.sink is not None:
            self.sink(message)
        else:
            log.info(message)
        if self.status is not None:
            self.status.update(f"optimize, {time.perf_counter() - self.started:.0f} s: {message[:100]}")

    def close(self) -> None:
        if self.status is not None:
            self.status.stop()
            self.status = None


def reporter(progress: "Callable[[str], None] | bool | None") -> Reporter:
    if callable(progress):
        return Reporter(progress, bar=False)
    return Reporter(None, bar=wants_bar() if progress is None else bool(progress))


@contextmanager
def quiet(*names: str) -> Iterator[None]:
    """Inside the search, the passes' per-epoch and per-step INFO lines are noise; -v keeps them."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        if lg.getEffectiveLevel() == logging.INFO:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
