"""Waiting for something other threads or processes do: a bound, never a measurement."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    what: str,
    *,
    every_s: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> None:
    """Return once ``predicate()`` holds; after ``timeout_s``, fail naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}{extra}")
        time.sleep(every_s)


def outbox_lines(outbox: Path) -> list[str]:
    """The outbox's complete lines (a line still being appended is left out)."""
    if not outbox.exists():
        return []
    return outbox.read_text(encoding="utf-8").split("\n")[:-1]
