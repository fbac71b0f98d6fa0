"""1,000 prompts due at one instant, the worker SIGKILLed half-way, a second worker finishes:
every text in the outbox exactly once, every prompt-log row ``sent``.

Strict on purpose: a text the dead worker had handed to the console sender but not yet
recorded ``sent`` must not go out a second time when another worker takes its claim over
(after ``HEARTH_PROMPT_LEASE_S``, 3 s here) — the take-over has the outbox to reconcile with.

The real thing: 250 couples x 2 partners x 2 rituals at 21:00 (Berlin) planned and claimed
by ``python -m service.cli scheduler`` onto Dramatiq's ``prompts`` queue in the embedded Redis
this test starts; ``python -m dramatiq workers.main`` with 4 threads sends them to the
outbox and the prompt log: a PostgreSQL schema when DATABASE_URL is set, else SQLite. The
dead worker's unacknowledged messages are requeued by Dramatiq's own maintenance, run by
the test with a 1 s heartbeat timeout (the workers' broker waits 30 s).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import time as time_of_day
from pathlib import Path

import pytest
from redis import Redis

from service.storage import PromptLog, PromptState, make_engine, migrate
from tests.databases import database
from tests.faults.processes import (
    Fleet,
    RedisServer,
    all_sent,
    due_sends,
    hearth_env,
    next_due,
    outbox_counts,
    redeliver_from_dead_workers,
    seconds_before,
    tally,
    unacked,
    wait_planned,
    wait_until,
    write_couples,
)
from tests.waiting import outbox_lines, wait_for

COUPLES = 250  # x 2 partners x 2 rituals = 1,000 texts at 21:00
RITUALS = [("check_in", "every day at 21:00"), ("gratitude", "every day at 21:00")]
THREADS = 4
LEASE_S = 3
LEAD_S = 8.0
KILL_AFTER = 500  # texts recorded sent
FINISH_S = 90.0
WINDOW_S = 5.0  # how long to look for a text out but unrecorded before killing anyway


@pytest.fixture
def log_url(tmp_path: Path) -> Iterator[str]:
    """The deployment's log: a PostgreSQL schema when DATABASE_URL is set (as in CI), else
    SQLite. One backend per run keeps the faults directory within its time budget;
    test_worker_killed.py runs its batch on both."""
    with database("postgresql" if os.environ.get("DATABASE_URL") else "sqlite", tmp_path) as url:
        migrate(url)
        yield url


def test_worker_killed_among_1000_due_prompts(
    tmp_path: Path, redis_server: RedisServer, log_url: str
) -> None:
    config = write_couples(tmp_path / "couples", COUPLES, RITUALS)
    due, offset = next_due(time_of_day(21, 0), LEAD_S)
    expected = due_sends(config, due)
    assert len(expected) == 1000
    outbox = tmp_path / "outbox.jsonl"
    env = hearth_env(
        config=config,
        data=tmp_path / "var",
        outbox=outbox,
        redis_url=redis_server.url,
        database_url=log_url,
        offset_s=offset,
        HEARTH_PROMPT_LEASE_S=str(LEASE_S),
    )
    engine = make_engine(log_url)
    log = PromptLog(engine)
    try:
        with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
            fleet.scheduler()
            fleet.worker("worker-1", threads=THREADS, dramatiq=True)
            fleet.wait_worker_ready("worker-1")
            wait_planned(redis, COUPLES, fleet)
            margin = seconds_before(due, offset)
            assert margin > 0, f"the scheduler took over {LEAD_S} s to plan\n{fleet.logs()}"

            # 1. The first worker gets half-way through the batch and is killed outright,
            # preferably while a text of it is out but not yet recorded sent (the window a
            # take-over must not send again), as soon as the test sees one.
            wait_for(
                lambda: log.counts()[PromptState.SENT] >= KILL_AFTER or bool(fleet.died()),
                LEAD_S + FINISH_S,
                f"the first worker to send {KILL_AFTER} texts",
                every_s=0.005,
                detail=fleet.logs,
            )
            assert not fleet.died(), fleet.logs()
            window_seen = wait_until(
                lambda: _text_out_unrecorded(outbox, log), WINDOW_S, fleet, every_s=0
            )
            fleet.kill("worker-1")
            held = unacked(redis)
            at_kill = outbox_counts(outbox)

            # 2. Dramatiq's maintenance returns the dead worker's messages to the queue.
            redeliver_from_dead_workers(redis_server.url, redis)
            # Read after that wait, so that a commit the dead worker had already sent to a
            # database server is in: the texts out whose row is still pending.
            unrecorded = [e for e in at_kill if _state(log, e) is PromptState.PENDING]

            # 3. A second worker finishes the batch.
            fleet.worker("worker-2", threads=THREADS, dramatiq=True)
            done = wait_until(all_sent(log, expected), FINISH_S, fleet)
            died = fleet.died()
            logs = fleet.logs()
            fleet.stop_all()

        result = tally(outbox, expected, log)
        print(
            f"planned {margin:.1f} s before the due instant; "
            f"killed with {sum(at_kill.values())} texts out, {len(unrecorded)} of them not "
            f"recorded sent (window seen: {window_seen}), {held} messages unacked: {result}"
        )
        assert 0 < sum(at_kill.values()) < len(expected), "the kill lands mid-batch"
        assert held > 0, "the dead worker held messages it had not acknowledged"
        assert not died, f"{died} died; finished: {done}\n{result}\n{logs}"
        assert result.exactly_once, (
            f"{result}\nout but unrecorded at the kill: {unrecorded}\n{logs}"
        )
        counts = log.counts()
        assert counts[PromptState.SENT] == len(expected) == sum(counts.values()), counts
    finally:
        engine.dispose()


def _text_out_unrecorded(outbox: Path, log: PromptLog) -> bool:
    """More texts in the outbox than rows recorded sent: one is out, its row still pending.
    (The outbox is read first: rows recorded later only raise the count compared with.)"""
    out = len(outbox_lines(outbox))
    return out > log.counts()[PromptState.SENT]


def _state(log: PromptLog, event_id: str) -> PromptState | None:
    record = log.get(event_id)
    return None if record is None else record.state
