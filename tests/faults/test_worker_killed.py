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
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from service.config import load_directory
from service.scheduler import ScheduleStore
from service.scheduler.planner import PROMPTS_QUEUE, scheduled_events
from service.storage import PromptLog, PromptState, make_engine, migrate
from tests.couple_texts import VALID
from tests.databases import BACKENDS, database
from tests.faults.processes import (
    Fleet,
    hearth_env,
    redeliver_from_dead_workers,
    tally,
    unacked,
)
from tests.waiting import outbox_lines, wait_for

if TYPE_CHECKING:
    from redis import Redis

COUPLES = 100
DAYS = 2  # 100 couples x 2 partners x 2 evenings = 400 sends
THREADS = 4
LEASE_VARIABLE = "HEARTH_PROMPT_LEASE_S"
LEASE_S = 3  # the default is 300
# Bounds for waiting, never measurements.
BOOT_S = 60.0
FINISH_S = 90.0


def test_worker_killed_mid_batch_sends_every_prompt_exactly_once(
    tmp_path: Path, redis_url: str, redis_client: Redis, backend: str
) -> None:
    config = _write_couples(tmp_path / "couples", COUPLES)
    with database(backend, tmp_path) as db_url:
        migrate(db_url)
        engine = make_engine(db_url)
        log = PromptLog(engine)
        with ExitStack() as stack:
            stack.callback(engine.dispose)
            events = _claim_everything(config, redis_client)
            total = len(events)
            assert total == COUPLES * 2 * DAYS
            outbox = tmp_path / "outbox.jsonl"
            env = hearth_env(
                config=config,
                data=tmp_path / "var",
                outbox=outbox,
                redis_url=redis_url,
                database_url=db_url,
                offset_s=0.0,
                **{
                    LEASE_VARIABLE: str(LEASE_S),
                    # The batch is the last two evenings, sent now: a grace that allows them.
                    "HEARTH_GRACE_PROMPT": "3d",
                },
            )
            fleet = stack.enter_context(Fleet(tmp_path, env))

            # 1. A worker gets part of the way through the batch and is killed outright. The
            # kill follows a commit of mark_sent, not an outbox write, so that it does not
            # land in the write-to-mark_sent window more often than chance would have it.
            fleet.worker("worker-1", threads=THREADS, dramatiq=True)
            first = fleet.process("worker-1")
            wait_for(
                lambda: log.counts()[PromptState.SENT] >= total // 4 or first.poll() is not None,
                BOOT_S,
                "the first worker to send a quarter of the batch",
                every_s=0.005,
                detail=lambda: fleet.log("worker-1"),
            )
            assert first.poll() is None, fleet.log("worker-1")
            fleet.kill("worker-1")
            held = unacked(redis_client)
            assert held > 0, "the dead worker held messages it had not acknowledged"

            # 2. Dramatiq's own maintenance returns the dead worker's messages to the queue.
            redeliver_from_dead_workers(redis_url, redis_client)

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
            fleet.worker("worker-2", threads=THREADS, dramatiq=True)
            wait_for(
                lambda: log.counts()[PromptState.SENT] == total,
                FINISH_S,
                f"all {total} events sent",
                every_s=0.1,
                detail=lambda: f"{log.counts()}\n{fleet.log('worker-2')}",
            )
            fleet.stop_all()

            result = tally(outbox, events, log)
            print(f"killed with {len(unsettled)} texts out but unrecorded: {result}")
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


def _pending_claim(log: PromptLog, event_id: str) -> datetime | None:
    """When the event was claimed, if it is still pending; None once it is settled."""
    record = log.get(event_id)
    assert record is not None, f"{event_id} is in the outbox but was never claimed"
    return record.claimed_at if record.state is PromptState.PENDING else None
