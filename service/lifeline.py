"""A child's lifeline to the process that started it: when that process dies, the child stops.

``hearth run`` supervises its children; if it is killed outright (SIGKILL, the OOM killer)
they must not go on serving as orphans. On Linux the kernel tells them:
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks for SIGTERM when the parent dies, and the request
survives ``execve`` (so ``hearth worker``'s exec of ``dramatiq`` keeps it). The rest is here:

- the parent may die before the child asks (between fork and prctl): the child compares
  ``os.getppid()`` with the parent it expects, and takes its SIGTERM at once if they differ;
- a daemon thread polls ``os.getppid()`` once a second. Once the parent is gone it sends
  SIGTERM itself where the kernel could not (not Linux; never twice, since a second SIGTERM
  makes Dramatiq's workers drop their messages), then gives the process a grace to stop by
  itself, and ends it (``os._exit``) if it has not: an orphan can hang where a supervised
  child would be killed, e.g. a Dramatiq worker whose parent died while it booted waits
  forever to tell that parent it is up.

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
from contextlib import suppress
from functools import partial

__all__ = ["PARENT_ENV", "die_with_parent", "hold", "hold_from_env"]

PARENT_ENV = "HEARTH_PARENT_PID"
"""Set by ``hearth run`` in each child's environment: the pid the child must outlive no longer."""

GRACE_S = 15.0  # as ``hearth run`` gives its children between SIGTERM and SIGKILL
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def hold(parent_pid: int, *, poll_s: float = 1.0, grace_s: float = GRACE_S) -> None:
    """Get SIGTERM when ``parent_pid`` stops being this process's parent (it died), and end
    ``grace_s`` seconds later if still running.

    If it already died, SIGTERM comes now. ``poll_s`` is how often the watching thread looks
    (0: no thread, for a process about to ``exec``, where only the kernel's signal lasts).
    """
    told = _ask_kernel()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)
        told = True
    if poll_s > 0:
        threading.Thread(
            target=_watch,
            args=(parent_pid, told, poll_s, grace_s),
            name="hearth-lifeline",
            daemon=True,
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
    # Runs in the forked child before exec, where little is safe: two system calls and a
    # signal, nothing that allocates or locks (libc was loaded by the parent, at import).
    _ask_kernel()
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), signal.SIGTERM)


def _ask_kernel() -> bool:
    """Ask for SIGTERM on the parent's death; False where the kernel cannot do it."""
    if _LIBC is None:
        return False
    return bool(_LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) == 0)


def _watch(parent_pid: int, told: bool, poll_s: float, grace_s: float) -> None:
    while os.getppid() == parent_pid:
        time.sleep(poll_s)
    if not told:
        os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(grace_s)
    with suppress(OSError):
        os.write(
            2, f"hearth: pid {os.getpid()} outlived its parent by {grace_s:g} s; exiting\n".encode()
        )
    os._exit(1)
