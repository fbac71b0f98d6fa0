"""Other processes on this machine, by pid: whether one still runs, what it runs.

A zombie (exited, not yet reaped by its parent) still answers ``kill(pid, 0)``; here it counts
as gone, since it serves nothing. One of our own children is reaped on the way. Without
``/proc`` (macOS) the name and command line are unknown and liveness is ``kill(pid, 0)`` alone.
"""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path

__all__ = ["alive", "command_line", "name"]


def alive(pid: int) -> bool:
    """True while ``pid`` runs; False once it exited, zombie or not (our own child: reaped)."""
    with suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    return _state(pid) != "Z"


def name(pid: int) -> str | None:
    """The process's name (``/proc/<pid>/comm``), or None when unknown."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def command_line(pid: int) -> list[str] | None:
    """The process's arguments (``/proc/<pid>/cmdline``), or None when unknown."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [os.fsdecode(part) for part in raw.split(b"\0") if part]


def _state(pid: int) -> str | None:
    """The one-letter state of ``/proc/<pid>/stat`` (R, S, Z, …), or None when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The name in parentheses may hold spaces and parentheses: the state follows the last ')'.
    fields = stat.rpartition(")")[2].split()
    return fields[0] if fields else None
