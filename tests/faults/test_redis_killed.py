"""Redis SIGKILLed shortly before a due instant and started again on its AOF a few seconds
after: the scheduler and the worker reconnect (neither dies), and every text due at that
instant is sent exactly once.

The real thing: ``python -m service.cli scheduler`` and ``python -m service.cli worker``
(which execs ``dramatiq workers.main``) on the embedded Redis this test starts (unix socket,
AOF, ``appendfsync everysec``), the console sender's outbox and a SQLite prompt log. The
processes' clocks are shifted so that 21:00 in Berlin comes ``LEAD_S`` seconds after start.
"""

from __future__ import annotations

import time
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

COUPLES = 20  # x 2 partners: 40 texts at 21:00
LEAD_S = 10.0  # start-up time before the due instant
KILL_BEFORE_S = (0.5, 2.0)  # Redis dies this long before the due instant (random in range)
DOWN_S = 5.0  # and stays down this long
FINISH_S = 60.0  # bound for the sends after the restart (consumer restarts, reconnects)


def test_redis_killed_and_restarted_across_a_due_instant(
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
        HEARTH_PROMPT_LEASE_S="3",
    )
    with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
        fleet.scheduler()
        fleet.worker(threads=4)
        fleet.wait_worker_ready()
        wait_planned(redis, COUPLES, fleet)
        kill_at = due - timedelta(seconds=jitter(*KILL_BEFORE_S))
        margin = seconds_before(due, offset)
        assert seconds_before(kill_at, offset) > 0, (
            f"the processes took over {LEAD_S} s to start: the kill would come too late\n"
            + fleet.logs()
        )
        assert redis.zcard("hearth:due") >= len(expected), "the 21:00 sends are scheduled"

        sleep_until(kill_at, offset)
        redis_server.kill()
        time.sleep(DOWN_S)
        redis_server.start()

        done = wait_until(all_sent(sqlite_log.prompts, expected), FINISH_S, fleet)
        died = fleet.died()
        running = fleet.running()
        logs = fleet.logs()
        fleet.stop_all()

    result = tally(outbox, expected, sqlite_log.prompts)
    print(
        f"ready {margin:.1f} s before the due instant; "
        f"redis killed {(due - kill_at).total_seconds():.2f} s before the due instant, "
        f"down {DOWN_S} s: {result}"
    )
    assert not died, (
        f"processes died after the Redis restart: {died} (still running: {running}); "
        f"finished: {done}\n{result}\n{logs}"
    )
    assert result.exactly_once, f"{result}\n{logs}"
