"""A child's lifeline to the process that started it: when that process dies, the child stops.

``hearth run`` supervises its children; if it is killed outright (SIGKILL, the OOM killer)
they must not go on serving as orphans. On Linux the kernel tells them:
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks for SIGTERM when the parent dies, and the request
survives ``execve`` (so ``hearth worker``'s exec of ``dramatiq`` keeps it). Two gaps are
closed here:

- the parent may die before the child asks (between fork and prctl): the child compares
  ``os.getppid()`` with the parent it expects, and stops at once when they differ;
- without PDEATHSIG (not Linux) a daemon thread polls ``os.getppid()`` once a second. On
  Linux it is not started: the kernel's signal comes first, and a second SIGTERM makes some
  processes (Dramatiq's workers) stop at once instead of finishing their messages.

The kernel follows the parent *thread* that forked the child: a parent starts its children
from a thread that lives as long as it does (its main thread).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from functools import partial

__all__ = ["PARENT_ENV", "die_with_parent", "hold", "hold_from_env"]

PARENT_ENV = "HEARTH_PARENT_PID"
"""Set by ``hearth run`` in each child's environment: the pid the child must outlive no longer."""

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def hold(parent_pid: int, *, poll_s: float = 1.0) -> None:
    """Get SIGTERM when ``parent_pid`` stops being this process's parent (it died).

    If it already did, SIGTERM comes now. ``poll_s`` is the fallback poll where the kernel
    cannot tell (0: no fallback, for a process about to ``exec``).
    """
    told = _ask_kernel()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
        return
    if not told and poll_s > 0:
        threading.Thread(
            target=_watch, args=(parent_pid, poll_s), name="hearth-lifeline", daemon=True
        ).start()


def hold_from_env(*, poll_s: float = 1.0) -> None:
    """``hold`` the parent named by ``HEARTH_PARENT_PID``, if set (else nothing).

    The variable is removed from this process's environment, so that processes it starts
    in turn do not inherit a lifeline to someone else's parent.
    """
    raw = os.environ.pop(PARENT_ENV, None)
    if raw is not None and raw.isdigit():
        hold(int(raw), poll_s=poll_s)


def die_with_parent() -> partial[None]:
    """A ``preexec_fn`` for ``subprocess.Popen``: the child (any program) gets SIGTERM when the
    calling process dies. Call from the thread that lives as long as the process."""
    return partial(_preexec, os.getpid())


def _preexec(parent_pid: int) -> None:
    # Runs in the forked child before exec: only async-signal-safe work (libc was loaded
    # by the parent, at import).
    _ask_kernel()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def _ask_kernel() -> bool:
    """Ask for SIGTERM on the parent's death; False where the kernel cannot do it."""
    if _LIBC is None:
        return False
    return bool(_LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)


def _watch(parent_pid: int, poll_s: float) -> None:
    while True:
        time.sleep(poll_s)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGTERM)
            return
