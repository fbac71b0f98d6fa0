"""A scheduler stopped, a couple file edited while it is down, a new scheduler started: the
new times are the ones sent, at once, not once the planning horizon runs short.

Ten couples have a check-in at 21:00 (Berlin). The first scheduler plans them (two days
ahead) and is stopped with SIGTERM. Then the files of couples 000-004 move their check-in to
20:59 and add a gratitude ritual at 20:59, and a second scheduler starts: their twenty 20:59
texts must go out at 20:59, handled by a worker that has not yet read the edited files (it
read them for the feed renders of the first start): four threads meet the edit at once.
Their old 21:00 check-ins must never be sent; the other couples' 21:00 texts go out once.
To see 21:00 pass without waiting a real minute, scheduler and worker are then stopped and
started again with their clocks shifted to just before 21:00 (a restart after a minute of
downtime, as far as they can tell).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from redis import Redis

from tests.faults.conftest import Log
from tests.faults.processes import (
    Fleet,
    RedisServer,
    all_sent,
    clock_offset,
    couple_path,
    couple_text,
    due_sends,
    hearth_env,
    next_due,
    outbox_counts,
    seconds_before,
    tally,
    unacked,
    wait_planned,
    wait_until,
    write_couples,
)

COUPLES = 10
EDITED = range(5)  # couple-000 to couple-004
THREADS = 4
LEAD_S = 12.0  # start-up, stop, edit and restart before the new time
RESTART_LEAD_S = 8.0  # start-up before the old time, after the clock jump
FINISH_S = 20.0


def test_restart_after_an_edit(tmp_path: Path, redis_server: RedisServer, sqlite_log: Log) -> None:
    config = write_couples(tmp_path / "couples", COUPLES, [("check_in", "every day at 21:00")])
    new_due, offset = next_due(time_of_day(20, 59), LEAD_S)
    old_due = new_due + timedelta(minutes=1)
    before_edit = due_sends(config, old_due)
    old_ids = {e for e in before_edit if e.split("/")[0] in {f"couple-{i:03d}" for i in EDITED}}
    assert len(old_ids) == 2 * len(EDITED)
    outbox = tmp_path / "outbox.jsonl"

    def env_at(offset_s: float) -> dict[str, str]:
        return hearth_env(
            config=config,
            data=tmp_path / "var",
            outbox=outbox,
            redis_url=redis_server.url,
            database_url=sqlite_log.url,
            offset_s=offset_s,
        )

    env = env_at(offset)
    with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
        fleet.worker(threads=THREADS)
        fleet.scheduler("scheduler-1")
        wait_planned(redis, COUPLES, fleet)
        assert all(redis.zscore("hearth:due", e) is not None for e in old_ids)
        assert fleet.stop("scheduler-1") == 0, fleet.log("scheduler-1")

        # The edit, while no scheduler runs: earlier check-in, and a new ritual.
        rituals = [("check_in", "every day at 20:59"), ("gratitude", "every day at 20:59")]
        for i in EDITED:
            edited = couple_path(config, i)
            scratch = edited.with_suffix(".tmp")
            scratch.write_text(couple_text(i, rituals), encoding="utf-8")
            os.replace(scratch, edited)
        new_ids = due_sends(config, new_due)
        assert len(new_ids) == 4 * len(EDITED)  # check-in to both, gratitude to each
        others = due_sends(config, old_due)
        assert others == before_edit - old_ids

        fleet.scheduler("scheduler-2")
        fleet.wait_worker_ready()
        margin = seconds_before(new_due, offset)
        assert margin > 0, f"the restart took over {LEAD_S} s\n{fleet.logs()}"
        wait_s = margin + FINISH_S
        new_done = wait_until(all_sent(sqlite_log.prompts, new_ids), wait_s, fleet)
        new_sent_at = datetime.now(UTC) + timedelta(seconds=offset)
        died = fleet.died()
        assert not died, f"{died} died\n{fleet.logs()}"

        # The old time: restart both with their clocks just before 21:00.
        assert fleet.stop("scheduler-2") == 0, fleet.log("scheduler-2")
        fleet.stop("worker")
        offset = clock_offset(old_due, RESTART_LEAD_S)
        env = env_at(offset)
        fleet.worker("worker-2", threads=THREADS, env=env)
        fleet.scheduler("scheduler-3", env=env)

        def old_time_handled() -> bool:
            due_then = redis.zcount("hearth:due", "-inf", round(old_due.timestamp() * 1000))
            return (
                all_sent(sqlite_log.prompts, others)()
                and due_then == 0
                and redis.llen("dramatiq:prompts") == 0
                and unacked(redis) == 0
            )

        old_done = wait_until(old_time_handled, RESTART_LEAD_S + FINISH_S, fleet)
        died = fleet.died()
        logs = fleet.logs()
        fleet.stop_all()

    edit = tally(outbox, new_ids, sqlite_log.prompts, others=frozenset(others))
    rest = tally(outbox, others, sqlite_log.prompts, others=frozenset(new_ids))
    old_sent = outbox_counts(outbox)
    old_rows = {e: (r.state.value if (r := sqlite_log.prompts.get(e)) else None) for e in old_ids}
    print(
        f"restarted {margin:.1f} s before the new time; the edited couples' new texts: {edit}\n"
        f"its old 21:00 texts: {old_rows}, in the outbox {sum(old_sent[e] for e in old_ids)} "
        f"times\nthe other couples' 21:00 texts: {rest}"
    )
    assert new_done, (
        f"the edited times were not sent by {new_sent_at:%H:%M:%S} UTC (due {new_due:%H:%M} "
        f"UTC): {edit}\n{logs}"
    )
    assert not died, f"{died} died\n{logs}"
    assert old_done, f"21:00 was not handled in time: {rest}\n{logs}"
    assert not any(old_sent[e] for e in old_ids), f"the old time was sent: {old_sent}"
    assert all(state in (None, "missed") for state in old_rows.values()), old_rows
    assert edit.exactly_once, f"{edit}\n{logs}"
    assert rest.exactly_once, f"{rest}\n{logs}"
