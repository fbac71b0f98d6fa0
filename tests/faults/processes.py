"""The real processes of a fault test: Redis, schedulers, workers; started, killed, stopped.

Every process runs in its own process group (its own session), so that a SIGKILL reaches
all of it (``dramatiq`` forks its worker processes) and nothing outlives the test: ``Fleet``
stops whatever it started when the block ends, passing or failing.

``RedisServer`` is the embedded Valkey of ``service/embedded_redis.py`` on a data dir of the
test's own (unix socket, AOF), so that a test can SIGKILL it and start it again on the same
AOF. Every process gets ``REDIS_URL`` pointing at it, so none of them starts a Redis of its
own while the test's is down.

Time: every process of a test gets the same ``HEARTH_CLOCK_OFFSET_S`` (``clock_offset``), so
that an instant the test picks (say 21:00 in Berlin) comes due a few seconds after start.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self
from zoneinfo import ZoneInfo

from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import dq_name

from service.config import load_directory
from service.domain.sends import planned_sends
from service.embedded_redis import EmbeddedRedis
from service.inbound import REPLIES_QUEUE
from service.scheduler.planner import PROMPTS_QUEUE
from service.storage import PromptLog, PromptState
from tests.waiting import outbox_lines, wait_for

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "ROOT",
    "STOP_S",
    "Fleet",
    "RedisServer",
    "Tally",
    "all_sent",
    "clock_offset",
    "couple_path",
    "couple_text",
    "due_sends",
    "hearth_env",
    "jitter",
    "kill_group",
    "next_due",
    "next_local",
    "outbox_counts",
    "redeliver_from_dead_workers",
    "seconds_before",
    "sleep_until",
    "stop_group",
    "tail",
    "tally",
    "unacked",
    "wait_planned",
    "wait_until",
    "write_couples",
]

ROOT = Path(__file__).resolve().parents[2]
ZONE = "Europe/Berlin"
# Bounds for waiting, never measurements.
STOP_S = 15.0
READY_S = 60.0
REDELIVER_S = 30.0
HEARTBEAT_TIMEOUT_MS = 1000
WORKER_READY = "is ready for action"  # what dramatiq logs once its workers consume


# --- time ------------------------------------------------------------------------------


def next_local(at: time_of_day, after: datetime, zone: str = ZONE) -> datetime:
    """The first instant after ``after`` whose wall time in ``zone`` is ``at`` (aware, UTC)."""
    tz = ZoneInfo(zone)
    day: date = after.astimezone(tz).date()
    while True:
        candidate = datetime.combine(day, at, tzinfo=tz).astimezone(UTC)
        if candidate > after:
            return candidate
        day += timedelta(days=1)


def clock_offset(due: datetime, lead_s: float) -> float:
    """The ``HEARTH_CLOCK_OFFSET_S`` under which ``due`` comes ``lead_s`` seconds from now."""
    return (due - datetime.now(UTC)).total_seconds() - lead_s


def daytime_offset_s(hour: int = 12) -> float:
    """The ``HEARTH_CLOCK_OFFSET_S`` under which the processes' clock reads today's ``hour``
    o'clock UTC: an afternoon in Berlin, where the example couple Alex and Sam keep quiet
    hours at night. A test that fires a text to them must not depend on the hour the suite
    runs at (run at 23:00 in Berlin, the text waits for the morning)."""
    now = datetime.now(UTC)
    return (now.replace(hour=hour, minute=0, second=0, microsecond=0) - now).total_seconds()


def next_due(at: time_of_day, lead_s: float, zone: str = ZONE) -> tuple[datetime, float]:
    """The next instant at wall time ``at`` that leaves the processes ``lead_s`` seconds to
    start, and the ``HEARTH_CLOCK_OFFSET_S`` under which it comes ``lead_s`` from now."""
    due = next_local(at, datetime.now(UTC) + timedelta(seconds=lead_s + 5), zone)
    return due, clock_offset(due, lead_s)


def sleep_until(instant: datetime, offset_s: float) -> None:
    """Sleep until the processes' shifted clock (real time + ``offset_s``) reads ``instant``."""
    wait = (instant - datetime.now(UTC)).total_seconds() - offset_s
    if wait > 0:
        time.sleep(wait)


# --- couples ---------------------------------------------------------------------------


def couple_text(index: int, rituals: Iterable[tuple[str, str]]) -> str:
    """A couple file: two partners with numbers of their own, no quiet hours, in Berlin;
    ``rituals`` are (kind, schedule) pairs."""
    lines = [
        f"timezone: {ZONE}",
        "partners:",
        "  - name: Alex",
        f'    phone: "+49151{index:05d}01"',
        "  - name: Sam",
        f'    phone: "+49151{index:05d}02"',
        "rituals:",
    ]
    for kind, schedule in rituals:
        lines += [f"  - kind: {kind}", f"    schedule: {schedule}"]
    return "\n".join(lines) + "\n"


def couple_path(directory: Path, index: int) -> Path:
    return directory / f"couple-{index:03d}.yaml"


def write_couples(directory: Path, count: int, rituals: Iterable[tuple[str, str]]) -> Path:
    """``count`` couple files with the same rituals; ``directory`` is created."""
    directory.mkdir(parents=True, exist_ok=True)
    chosen = list(rituals)
    for i in range(count):
        couple_path(directory, i).write_text(couple_text(i, chosen), encoding="utf-8")
    return directory


def due_sends(config: Path, instant: datetime) -> set[str]:
    """The event ids of every send the couple files in ``config`` put exactly at ``instant``."""
    loaded = load_directory(config)
    assert not loaded.failures, loaded.failures
    window = timedelta(seconds=1)
    return {
        s.event_id
        for c in loaded.couples.values()
        for s in planned_sends(c, instant - window, instant + window)
        if s.at == instant
    }


# --- processes -------------------------------------------------------------------------


def hearth_env(
    *,
    config: Path,
    data: Path,
    outbox: Path,
    redis_url: str,
    database_url: str,
    offset_s: float,
    **extra: str,
) -> dict[str, str]:
    """The environment every process of a test shares; nothing leaks in from the caller's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEARTH_", "TWILIO_", "dramatiq_"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    return env | {
        "HEARTH_CONFIG_DIR": str(config),
        "HEARTH_DATA_DIR": str(data),
        "HEARTH_OUTBOX": str(outbox),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "HEARTH_CLOCK_OFFSET_S": repr(offset_s),
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


@dataclass
class Started:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    log_start: int  # where this run's output begins in ``log`` (a name may be started again)
    ended_by_test: bool = False

    def output(self) -> str:
        """What this run of the process has logged so far."""
        if not self.log.exists():
            return ""
        return self.log.read_bytes()[self.log_start :].decode(errors="replace")


@dataclass
class Fleet:
    """Every process a test starts, each in its own process group; all stopped on leaving."""

    directory: Path
    env: Mapping[str, str]
    started: dict[str, Started] = field(default_factory=dict)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop_all()

    def start(
        self, name: str, command: list[str], env: Mapping[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        assert name not in self.started or self.started[name].ended_by_test, name
        log_path = self.directory / f"{name}.log"
        with log_path.open("ab") as log:
            log_start = log.tell()
            process = subprocess.Popen(
                command,
                cwd=self.directory,  # no stray .env from the checkout
                env=dict(env if env is not None else self.env),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = Started(name, process, log_path, log_start)
        return process

    def scheduler(self, name: str = "scheduler", env: Mapping[str, str] | None = None) -> None:
        """``python -m service.cli scheduler``."""
        self.start(name, [sys.executable, "-m", "service.cli", "scheduler"], env)

    def worker(
        self,
        name: str = "worker",
        *,
        threads: int = 4,
        dramatiq: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        """``python -m service.cli worker`` (which execs ``dramatiq workers.main`` for both
        queues), or with ``dramatiq`` that command directly for the prompts queue alone."""
        if dramatiq:
            command = [sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1"]
            command += ["--threads", str(threads), "--queues", PROMPTS_QUEUE]
            command += ["--path", str(ROOT)]
        else:
            command = [sys.executable, "-m", "service.cli", "worker", "--processes", "1"]
            command += ["--threads", str(threads)]
        self.start(name, command, env)

    def process(self, name: str) -> subprocess.Popen[bytes]:
        return self.started[name].process

    def log(self, name: str) -> str:
        return tail(self.started[name].log)

    def wait_worker_ready(self, name: str = "worker", timeout_s: float = READY_S) -> None:
        """Until dramatiq logs that its worker processes consume."""
        entry = self.started[name]
        wait_for(
            lambda: WORKER_READY in entry.output() or entry.process.poll() is not None,
            timeout_s,
            f"{name} to be ready",
            every_s=0.1,
        )
        assert entry.process.poll() is None, f"{name} exited at start:\n{self.log(name)}"

    def kill(self, name: str) -> None:
        """SIGKILL the whole group of ``name``; the test ends it, so it does not count as died."""
        entry = self.started[name]
        entry.ended_by_test = True
        kill_group(entry.process)

    def stop(self, name: str) -> int:
        """SIGTERM ``name`` (SIGKILL after ``STOP_S``); its exit status."""
        entry = self.started[name]
        entry.ended_by_test = True
        stop_group(entry.process)
        return entry.process.returncode

    def died(self) -> dict[str, int]:
        """Processes that exited without the test ending them: name -> exit status."""
        return {
            name: code
            for name, entry in self.started.items()
            if not entry.ended_by_test and (code := entry.process.poll()) is not None
        }

    def running(self) -> list[str]:
        return [n for n, e in self.started.items() if e.process.poll() is None]

    def logs(self, chars: int = 2500) -> str:
        """The tail of each process's log, for an assertion message."""
        return "\n".join(
            f"--- {name} (exit {e.process.poll()}) ---\n{tail(e.log, chars)}"
            for name, e in self.started.items()
        )

    def stop_all(self) -> None:
        """Stop every process still running, newest first; workers finish what they hold."""
        with ExitStack() as stack:
            for entry in self.started.values():
                stack.callback(stop_group, entry.process)


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group's leader (it stops its children), then SIGKILL what is left."""
    if process.poll() is None:
        # Not the whole group: a dramatiq worker process that gets a second SIGTERM from
        # its main process exits at once instead of finishing its messages.
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_S)
    kill_group(process)


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL every process of the group and wait until none of them runs any more."""
    _signal_group(process.pid, signal.SIGKILL)
    process.wait(timeout=STOP_S)
    deadline = time.monotonic() + STOP_S
    while _running_in_group(process.pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"processes of group {process.pid} outlived SIGKILL")
        _signal_group(process.pid, signal.SIGKILL)
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _running_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that are not zombies (a zombie runs nothing any more)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue  # it exited while we looked
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            found.append(int(stat.parent.name))
    return found


def tail(path: Path, chars: int = 3000) -> str:
    return _read(path)[-chars:]


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


# --- Redis -----------------------------------------------------------------------------


class RedisServer:
    """The embedded Redis on a data dir of its own (a short path: unix sockets have a length
    limit), which a test may SIGKILL and start again on the same AOF."""

    def __init__(self) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="hf-")
        self._server = EmbeddedRedis(Path(self._tmp.name))
        self.kills = 0

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self._server.stop()
        finally:
            self._tmp.cleanup()

    def kill(self) -> None:
        """SIGKILL the server: no AOF rewrite, no goodbye to clients."""
        pid = self._server.pid
        assert pid is not None, "the embedded Redis is not running"
        os.kill(pid, signal.SIGKILL)
        self._server.stop()  # reaps it and removes the socket and pid file it left
        self.kills += 1

    def start(self) -> None:
        """Start it again on the same data dir; it loads the AOF before it answers."""
        self._server.start(timeout_s=30)


def wait_planned(redis: Redis, couples: int, fleet: Fleet, timeout_s: float = 30) -> None:
    """Until a scheduler has planned every one of ``couples`` couples."""
    wait_for(
        lambda: redis.zcard("hearth:planned_until") == couples,
        timeout_s,
        "the scheduler to plan every couple",
        detail=fleet.logs,
    )


def unacked(redis: Redis) -> int:
    return sum(int(redis.scard(key)) for key in redis.scan_iter(match="dramatiq:__acks__.*"))


def redeliver_from_dead_workers(redis_url: str, redis: Redis) -> None:
    """Run Dramatiq's requeue maintenance until no dead worker holds unacked messages.

    The heartbeat timeout is an argument of each call, so a broker of the test's own with a
    1 s timeout and maintenance on every command requeues what a SIGKILLed worker held.
    Only call this while no worker runs: a live one busy for over a second would be taken
    for dead too.
    """
    janitor = RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS, maintenance_chance=MAINTENANCE_SCALE
    )

    def requeued() -> bool:
        for queue in (PROMPTS_QUEUE, dq_name(PROMPTS_QUEUE), REPLIES_QUEUE):
            janitor.do_qsize(queue)  # any command; maintenance runs first, for this queue
        return not list(redis.scan_iter(match="dramatiq:__acks__.*"))

    try:
        wait_for(requeued, REDELIVER_S, "the dead worker's messages to be requeued", every_s=0.1)
    finally:
        janitor.close()
        janitor.client.connection_pool.disconnect()


# --- outcomes --------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """What came of the expected sends: each should be in the outbox once, and ``sent``."""

    expected: int
    sent: int  # expected events in the outbox at least once
    lost: list[str]  # expected, never in the outbox
    duplicated: dict[str, int]  # in the outbox more than once: how often
    unexpected: list[str]  # in the outbox, not expected
    not_logged_sent: dict[str, str]  # expected events whose log row is not ``sent``

    @property
    def exactly_once(self) -> bool:
        return not (self.lost or self.duplicated or self.unexpected or self.not_logged_sent)

    def __str__(self) -> str:
        extra = sum(n - 1 for n in self.duplicated.values())
        head = (
            f"expected {self.expected}: sent {self.sent}, lost {len(self.lost)}, "
            f"duplicated {len(self.duplicated)} (+{extra} texts), "
            f"unexpected {len(self.unexpected)}, log not 'sent' {len(self.not_logged_sent)}"
        )
        examples = [
            f"  lost e.g. {sorted(self.lost)[:3]}" if self.lost else "",
            f"  duplicated e.g. {sorted(self.duplicated.items())[:3]}" if self.duplicated else "",
            f"  unexpected e.g. {sorted(self.unexpected)[:3]}" if self.unexpected else "",
            f"  log e.g. {sorted(self.not_logged_sent.items())[:3]}"
            if self.not_logged_sent
            else "",
        ]
        return "\n".join([head, *(e for e in examples if e)])


def outbox_counts(outbox: Path) -> Counter[str]:
    return Counter(json.loads(line)["event_id"] for line in outbox_lines(outbox))


def tally(
    outbox: Path, expected: set[str], log: PromptLog, *, others: frozenset[str] = frozenset()
) -> Tally:
    """Count the outbox against ``expected``; ``others`` may appear without counting as
    unexpected (sends the test does not judge)."""
    sent = outbox_counts(outbox)
    states = {}
    for event_id in sorted(expected):
        record = log.get(event_id)
        state = "no row" if record is None else record.state.value
        if state != PromptState.SENT.value:
            states[event_id] = state
    return Tally(
        expected=len(expected),
        sent=len(expected & set(sent)),
        lost=sorted(expected - set(sent)),
        duplicated={e: n for e, n in sent.items() if n > 1},
        unexpected=sorted(set(sent) - expected - others),
        not_logged_sent=states,
    )


def all_sent(log: PromptLog, expected: set[str]) -> Callable[[], bool]:
    """A predicate: every expected event's row is ``sent`` (rows counted by state first)."""

    def check() -> bool:
        if log.counts()[PromptState.SENT] < len(expected):
            return False
        return all((r := log.get(e)) is not None and r.state is PromptState.SENT for e in expected)

    return check


def jitter(low: float, high: float) -> float:
    """A random delay in [low, high): faults land at varied points of a tick."""
    return random.uniform(low, high)


def wait_until(
    done: Callable[[], bool], timeout_s: float, fleet: Fleet, *, every_s: float = 0.2
) -> bool:
    """Wait until ``done()`` or until a process of ``fleet`` dies unbidden, at most
    ``timeout_s``; whether ``done()`` came true (the caller asserts, with counts)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if done():
            return True
        if fleet.died() or time.monotonic() > deadline:
            return False
        time.sleep(every_s)


def seconds_before(instant: datetime, offset_s: float) -> float:
    """How far the processes' shifted clock (real time + ``offset_s``) is from ``instant``."""
    return (instant - datetime.now(UTC)).total_seconds() - offset_s
