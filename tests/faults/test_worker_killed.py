"""A worker killed with SIGKILL mid-batch: every prompt is sent, exactly once.

``HEARTH_PROMPT_LEASE_S`` (the prompt log's lease in seconds) is set short, so the events
whose claim the dead worker held come back in seconds rather than after 5 minutes.

The real thing end to end: couple files on disk, every send claimed from the schedule store
onto Dramatiq's ``prompts`` queue in Redis, ``python -m dramatiq workers.main`` with 4
threads and the console sender on a migrated SQLite file (or a PostgreSQL schema when
DATABASE_URL is set), killed whole with SIGKILL once a quarter of the batch is recorded
sent, then a second worker that finishes the batch.

Redelivery. Dramatiq's RedisBroker moves a dead worker's fetched-but-unacked messages back
onto their queue in its "maintenance" (``dispatch.lua``), which runs on a random 1 in 1000
broker commands and counts a worker dead after ``heartbeat_timeout`` (60 s) without a
command from it. The heartbeat timeout is an argument of each *call*, not a property of the
dead worker, so the test runs that same maintenance itself, from a broker of its own with a
1 s timeout and maintenance on every command, while no live worker is connected; no product
setting is needed for that.

No duplicate. A worker killed between the console write and ``mark_sent`` leaves the event
pending with its text already out. Its message was not acknowledged either, so it is
redelivered, is answered "busy" until the dead worker's claim is older than the lease, then
takes the claim over; a take-over asks the sender's own record first (the console sender's
outbox), finds the text, and records it sent with that text's id instead of sending again.
The test records which texts were out but still pending at the kill (at most one per worker
thread; 0 to 3 per run in practice) and checks exactly that: each is in the outbox once,
recorded sent with the id of its one line after a take-over, and every other event too.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
from dramatiq.common import dq_name

from service.config import load_directory
from service.scheduler import ScheduleStore
from service.scheduler.planner import PROMPTS_QUEUE, scheduled_events
from service.storage import PromptLog, PromptState, make_engine, migrate
from tests.couple_texts import VALID
from tests.databases import BACKENDS, database
from tests.waiting import outbox_lines, wait_for

if TYPE_CHECKING:
    from redis import Redis

ROOT = Path(__file__).resolve().parents[2]
COUPLES = 100
DAYS = 2  # 100 couples x 2 partners x 2 evenings = 400 sends
THREADS = 4
LEASE_VARIABLE = "HEARTH_PROMPT_LEASE_S"
LEASE_S = 3  # the default is 300
HEARTBEAT_TIMEOUT_MS = 1000
# Bounds for waiting, never measurements.
BOOT_S = 60.0
FINISH_S = 90.0
REDELIVER_S = 30.0
STOP_S = 15.0


def test_worker_killed_mid_batch_sends_every_prompt_exactly_once(
    tmp_path: Path, redis_url: str, redis_client: Redis, backend: str
) -> None:
    config = _write_couples(tmp_path / "couples", COUPLES)
    with database(backend, tmp_path) as db_url:
        migrate(db_url)
        engine = make_engine(db_url)
        log = PromptLog(engine)
        try:
            events = _claim_everything(config, redis_client)
            total = len(events)
            assert total == COUPLES * 2 * DAYS
            outbox = tmp_path / "outbox.jsonl"
            env = _worker_env(tmp_path, config, redis_url, db_url, outbox)

            # 1. A worker gets part of the way through the batch and is killed outright. The
            # kill follows a commit of mark_sent, not an outbox write, so that it does not
            # land in the write-to-mark_sent window more often than chance would have it.
            with _worker(env, tmp_path / "worker-1.log") as first:
                wait_for(
                    lambda: (
                        log.counts()[PromptState.SENT] >= total // 4 or first.poll() is not None
                    ),
                    BOOT_S,
                    "the first worker to send a quarter of the batch",
                    every_s=0.005,
                    detail=lambda: _tail(tmp_path / "worker-1.log"),
                )
                assert first.poll() is None, _tail(tmp_path / "worker-1.log")
                _kill_group(first)
            unacked = _unacked(redis_client)
            assert unacked > 0, "the dead worker held messages it had not acknowledged"

            # 2. Dramatiq's own maintenance returns the dead worker's messages to the queue.
            _redeliver_from_dead_workers(redis_url, redis_client)

            # What the dead worker left (read after the redelivery wait, so that a commit it
            # had already sent to the database server is in): the texts that are out, and
            # those of them still pending, whose message was never acknowledged either.
            written = [json.loads(line)["event_id"] for line in outbox_lines(outbox)]
            assert 0 < len(written) < total, "the kill must land in the middle of the batch"
            assert len(set(written)) == len(written), "nothing was sent twice before the kill"
            claims = {e: _pending_claim(log, e) for e in written}
            unsettled = {e: claimed for e, claimed in claims.items() if claimed is not None}
            assert len(unsettled) <= THREADS  # at most one text in flight per thread

            # 3. A second worker finishes the batch.
            with _worker(env, tmp_path / "worker-2.log"):
                wait_for(
                    lambda: log.counts()[PromptState.SENT] == total,
                    FINISH_S,
                    f"all {total} events sent",
                    every_s=0.1,
                    detail=lambda: f"{log.counts()}\n{_tail(tmp_path / 'worker-2.log')}",
                )

            lines = [json.loads(line) for line in outbox_lines(outbox)]
            sent = Counter(line["event_id"] for line in lines)
            assert set(sent) == events
            twice = sorted(e for e, n in sent.items() if n != 1)
            assert twice == [], f"sent {total}, duplicated {len(twice)}: {twice}"
            # The texts that were out but unrecorded at the kill: taken over after the lease
            # and recorded from the outbox, with the id of the one text that went out.
            provider_ids = {line["event_id"]: line["id"] for line in lines}
            for event_id, dead_claim in unsettled.items():
                record = log.get(event_id)
                assert record is not None
                assert record.state is PromptState.SENT
                assert record.provider_id == provider_ids[event_id]
                assert record.attempts == 2
                assert record.claimed_at is not None
                assert record.claimed_at >= dead_claim + timedelta(seconds=LEASE_S)
            counts = log.counts()
            assert counts[PromptState.SENT] == total
            assert sum(counts.values()) == total
        finally:
            engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _write_couples(directory: Path, count: int) -> Path:
    directory.mkdir()
    for i in range(count):
        text = VALID.replace("+4915112340001", f"+49151{i:05d}01").replace(
            "+4915112340002", f"+49151{i:05d}02"
        )
        (directory / f"couple-{i:03d}.yaml").write_text(text, encoding="utf-8")
    return directory


def _claim_everything(config: Path, redis: Redis) -> set[str]:
    """Plan the last ``DAYS`` evenings of every couple and claim each send onto the queue."""
    loaded = load_directory(config)
    assert len(loaded.couples) == COUPLES
    end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start = end - timedelta(days=DAYS)
    events = [e for c in loaded.couples.values() for e in scheduled_events(c, start, end)]
    store = ScheduleStore(redis, queue=PROMPTS_QUEUE)
    store.add(events)
    enqueued = 0
    for fire_at in sorted({e.fire_at for e in events}):
        claimed = store.claim_due(fire_at, limit=len(events))
        assert claimed.missed == []
        enqueued += claimed.enqueued
    assert enqueued == len(events)
    assert redis.llen(f"dramatiq:{PROMPTS_QUEUE}") == len(events)
    return {e.event_id for e in events}


def _worker_env(
    tmp_path: Path, config: Path, redis_url: str, db_url: str, outbox: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEARTH_", "TWILIO_", "dramatiq_"))
        and k not in ("REDIS_URL", "DATABASE_URL")
    }
    return env | {
        "HEARTH_CONFIG_DIR": str(config),
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "HEARTH_OUTBOX": str(outbox),
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        LEASE_VARIABLE: str(LEASE_S),
        # The batch is the last two evenings, sent now: a grace that still allows them.
        "HEARTH_GRACE_PROMPT": "3d",
    }


@contextmanager
def _worker(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``dramatiq workers.main`` in its own process group; stopped (or killed) on leaving."""
    command = [sys.executable, "-m", "dramatiq", "workers.main", "--processes", "1"]
    command += ["--threads", str(THREADS), "--queues", PROMPTS_QUEUE, "--path", str(ROOT)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=log_path.parent,  # no stray .env from the checkout
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        _stop_group(process)


def _stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's main process (it stops its workers), then SIGKILL what is left."""
    if process.poll() is None:
        # Not the whole group: a worker process that gets a second SIGTERM from the main
        # process exits at once instead of finishing its messages.
        process.send_signal(signal.SIGTERM)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_S)
    _kill_group(process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
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


def _unacked_keys(redis: Redis) -> list[bytes]:
    return list(redis.scan_iter(match="dramatiq:__acks__.*"))


def _unacked(redis: Redis) -> int:
    return sum(int(redis.scard(key)) for key in _unacked_keys(redis))


def _redeliver_from_dead_workers(redis_url: str, redis: Redis) -> None:
    """Run Dramatiq's requeue maintenance until no dead worker holds unacked messages.

    Only call this while no worker runs: with a 1 s heartbeat timeout, a live worker busy
    for longer than that would be taken for dead too.
    """
    janitor = RedisBroker(  # type: ignore[no-untyped-call]
        url=redis_url, heartbeat_timeout=HEARTBEAT_TIMEOUT_MS, maintenance_chance=MAINTENANCE_SCALE
    )

    def requeued() -> bool:
        for queue in (PROMPTS_QUEUE, dq_name(PROMPTS_QUEUE)):
            janitor.do_qsize(queue)  # any command; maintenance runs first, for this queue
        return not _unacked_keys(redis)

    try:
        wait_for(requeued, REDELIVER_S, "the dead worker's messages to be requeued", every_s=0.1)
    finally:
        janitor.close()
        janitor.client.connection_pool.disconnect()


def _pending_claim(log: PromptLog, event_id: str) -> datetime | None:
    """When the event was claimed, if it is still pending; None once it is settled."""
    record = log.get(event_id)
    assert record is not None, f"{event_id} is in the outbox but was never claimed"
    return record.claimed_at if record.state is PromptState.PENDING else None


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
