"""Two schedulers, one SIGKILLed around the instant ~200 couples come due: every text goes
out exactly once, and the surviving scheduler keeps running.

Both are ``python -m service.cli scheduler`` on the embedded Redis this test starts; one
``python -m service.cli worker`` sends to the console outbox and a SQLite prompt log. The
claim is one Lua script, so a scheduler killed before, during or after it leaves either
everything or nothing claimed; the kill lands at a random point within ``KILL_AROUND_S`` of
the due instant, where a tick claims the whole batch.
"""

from __future__ import annotations

import random
from datetime import time as time_of_day
from datetime import timedelta
from pathlib import Path

from redis import Redis

from tests.faults.conftest import Log
from tests.faults.processes import (
    Fleet,
    RedisServer,
    all_sent,
    due_sends,
    hearth_env,
    jitter,
    next_due,
    seconds_before,
    sleep_until,
    tally,
    wait_planned,
    wait_until,
    write_couples,
)

COUPLES = 200  # x 2 partners: 400 texts at 21:00
LEAD_S = 10.0  # start-up time before the due instant (four processes on two cores)
KILL_AROUND_S = (-0.3, 0.7)  # the kill, relative to the due instant
FINISH_S = 60.0


def test_one_of_two_schedulers_killed_mid_tick(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    config = write_couples(tmp_path / "couples", COUPLES, [("check_in", "every day at 21:00")])
    due, offset = next_due(time_of_day(21, 0), LEAD_S)
    expected = due_sends(config, due)
    assert len(expected) == COUPLES * 2
    outbox = tmp_path / "outbox.jsonl"
    env = hearth_env(
        config=config,
        data=tmp_path / "var",
        outbox=outbox,
        redis_url=redis_server.url,
        database_url=sqlite_log.url,
        offset_s=offset,
    )
    victim, survivor = random.sample(["scheduler-a", "scheduler-b"], 2)
    with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
        fleet.scheduler("scheduler-a")
        fleet.scheduler("scheduler-b")
        fleet.worker(threads=4)
        fleet.wait_worker_ready()
        wait_planned(redis, COUPLES, fleet)
        kill_at = due + timedelta(seconds=jitter(*KILL_AROUND_S))
        margin = seconds_before(due, offset)
        assert margin > 0, f"the processes took over {LEAD_S} s to start\n" + fleet.logs()
        assert not fleet.died(), fleet.logs()

        sleep_until(kill_at, offset)
        fleet.kill(victim)
        claimed_before_kill = redis.zcard("hearth:fired")

        done = wait_until(all_sent(sqlite_log.prompts, expected), FINISH_S, fleet)
        died = fleet.died()
        logs = fleet.logs()
        fleet.stop_all()

    result = tally(outbox, expected, sqlite_log.prompts)
    print(
        f"ready {margin:.1f} s before the due instant; "
        f"{victim} killed {(kill_at - due).total_seconds():+.2f} s from the due instant "
        f"({claimed_before_kill} events fired by then): {result}"
    )
    assert not died, f"{died} died; finished: {done}\n{result}\n{logs}"
    assert survivor not in died
    assert result.exactly_once, f"{result}\n{logs}"
