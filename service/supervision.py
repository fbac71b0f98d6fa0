"""Keeping ``hearth run``'s children running: restart what dies, with backoff; stop in order.

A child that exits by itself (a crash, the OOM killer, a bug) is started again after a delay
that doubles with each death in a row — 1 s, 2 s, 4 s … at most 30 s — and starts again
from 1 s once the child has stayed up a minute: a crash loop costs little, a one-off crash
is mended at once. Each death is one line: ``hearth: the worker exited (-9); restarting in
1 s``.

Children come in tiers, started first to last and stopped last to first: the embedded
Redis, then the scheduler, worker and web app. Stopping a tier sends SIGTERM to all of it,
then SIGKILL to whatever still runs after the grace, so the services finish their work
while Redis is still there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from service.domain.errors import HearthError
from service.lifeline import PARENT_ENV

if TYPE_CHECKING:
    from service.embedded_redis import EmbeddedRedis

__all__ = ["Backoff", "Child", "HearthCommand", "RedisServer", "Supervisor"]

GRACE_S = 15.0
TICK_S = 0.2


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before restarting a child that died ``deaths`` times in a row."""

    first_s: float = 1.0
    cap_s: float = 30.0
    steady_s: float = 60.0  # up this long, a child's next death counts as its first

    def delay_s(self, deaths: int) -> float:
        return float(min(self.cap_s, self.first_s * 2 ** max(deaths - 1, 0)))


class Child(Protocol):
    """One supervised process. ``start`` may be called again once it exited."""

    name: str

    @property
    def pid(self) -> int | None: ...

    def start(self) -> None: ...

    def poll(self) -> int | None:
        """Its exit status once it exited (negative: killed by that signal); None while up."""

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM); returns at once."""

    def finish(self, deadline: float) -> None:
        """Wait for it to exit until ``deadline`` (monotonic), then kill it."""


class HearthCommand:
    """A ``hearth`` subcommand as a child process, tied to this process by its lifeline."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str]) -> None:
        self.name = name
        self._args = [sys.executable, "-m", "service.cli", *args]
        self._env = env
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> None:
        # The child holds its lifeline itself, at start-up (service/lifeline.py).
        env = self._env | {PARENT_ENV: str(os.getpid())}
        self._process = subprocess.Popen(self._args, env=env)

    def poll(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def terminate(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()

    def finish(self, deadline: float) -> None:
        if self._process is None:
            return
        try:
            self._process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


class RedisServer:
    """The embedded Redis as a child: restarted on the same socket and AOF when it dies."""

    name = "redis"

    def __init__(self, server: EmbeddedRedis) -> None:
        self.server = server
        self._tried = False

    @property
    def pid(self) -> int | None:
        return self.server.pid

    def start(self) -> None:
        self._tried = True
        if self.server.exit_code is not None:
            self.server.stop()  # forget the dead server; its socket and pid file go too
        self.server.start(lifeline=True)

    def poll(self) -> int | None:
        if self.server.pid is None:
            return 1 if self._tried else None  # a start that failed
        return self.server.exit_code

    def terminate(self) -> None:
        pass  # stopped in ``finish``: EmbeddedRedis.stop signals, waits and cleans up at once

    def finish(self, deadline: float) -> None:
        self.server.stop(timeout_s=max(deadline - time.monotonic(), 0.1))


@dataclass(slots=True)
class _Slot:
    child: Child
    started_at: float = 0.0
    deaths: int = 0  # in a row, each within ``steady_s`` of its start
    restart_at: float | None = None  # set while a dead child waits for its restart


class Supervisor:
    """Runs ``tiers`` of children until told to stop, restarting any that dies."""

    def __init__(
        self,
        tiers: Sequence[Sequence[Child]],
        *,
        say: Callable[[str], None],
        on_start: Callable[[], None] = lambda: None,
        backoff: Backoff | None = None,
        grace_s: float = GRACE_S,
    ) -> None:
        self._tiers = [[_Slot(child) for child in tier] for tier in tiers]
        self._say = say
        self._on_start = on_start
        self._backoff = backoff or Backoff()
        self._grace_s = grace_s

    def pids(self) -> dict[str, int]:
        """Each running child's pid, by name."""
        return {
            s.child.name: pid
            for tier in self._tiers
            for s in tier
            if (pid := s.child.pid) is not None and s.child.poll() is None
        }

    def start(self) -> None:
        """Start every child not running yet, tier by tier (a child may already run)."""
        now = time.monotonic()
        for tier in self._tiers:
            for slot in tier:
                if slot.child.pid is None or slot.child.poll() is not None:
                    slot.child.start()
                slot.started_at = now
        self._on_start()

    def watch(self, stop: threading.Event) -> None:
        """Restart children that die, until ``stop`` is set (by a signal handler)."""
        while not stop.wait(TICK_S):
            self.check(time.monotonic(), stop)

    def check(self, now: float, stop: threading.Event) -> None:
        """One pass: note deaths, restart those whose delay is over."""
        for tier in self._tiers:
            for slot in tier:
                code = slot.child.poll()
                if code is None:
                    continue
                if slot.restart_at is None:
                    self._died(slot, f"exited ({code})", now)
                elif now >= slot.restart_at and not stop.is_set():
                    self._restart(slot, now)

    def stop(self) -> None:
        """Stop every child, last tier first: SIGTERM, then SIGKILL after the grace."""
        for tier in reversed(self._tiers):
            for slot in tier:
                slot.child.terminate()
            deadline = time.monotonic() + self._grace_s
            for slot in tier:
                slot.child.finish(deadline)

    def _died(self, slot: _Slot, how: str, now: float) -> None:
        if now - slot.started_at >= self._backoff.steady_s:
            slot.deaths = 0
        slot.deaths += 1
        delay = self._backoff.delay_s(slot.deaths)
        slot.restart_at = now + delay
        self._say(f"hearth: the {slot.child.name} {how}; restarting in {delay:g} s")

    def _restart(self, slot: _Slot, now: float) -> None:
        slot.restart_at = None
        slot.started_at = now
        try:
            slot.child.start()
        except (HearthError, OSError) as e:
            self._died(slot, f"could not start ({e})", now)
            return
        self._on_start()
