"""``HEARTH_SMS_RATE`` through the real processes: 50 prompts due at one instant, two
``hearth worker`` processes sharing one limiter in Redis, at 5 texts per second.

Every prompt goes out exactly once, and the outbox's ``sent_at`` (the service's clock when
the text left, after its wait for a slot) shows the rate held: 5/s is one text per 200 ms
bucket of the limiter, so any one second holds at most ``rate + limit`` texts (the end of one
bucket and the start of the next, ``service/senders/rate.py``), and the burst as a whole
flows at about the rate, not faster, and not much slower either (the workers must keep up).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from redis import Redis

from service.senders.rate import bucket_for
from tests.faults.conftest import Log
from tests.faults.processes import (
    Fleet,
    RedisServer,
    all_sent,
    due_sends,
    hearth_env,
    next_due,
    seconds_before,
    tally,
    wait_planned,
    wait_until,
    write_couples,
)
from tests.waiting import outbox_lines

RATE = 5
COUPLES = 25  # x 2 partners = 50 prompts at 21:00
LEAD_S = 8.0  # start-up of the scheduler and both workers before 21:00
FINISH_S = 30.0  # a bound: 50 texts at 5/s take 10 s
TRAIL = timedelta(milliseconds=50)  # how late a text's sent_at may be after its slot


def test_two_workers_send_a_burst_at_the_shared_rate_each_prompt_once(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    config = write_couples(tmp_path / "couples", COUPLES, [("check_in", "every day at 21:00")])
    due, offset = next_due(time_of_day(21, 0), LEAD_S)
    expected = due_sends(config, due)
    assert len(expected) == 2 * COUPLES
    outbox = tmp_path / "outbox.jsonl"
    env = hearth_env(
        config=config,
        data=tmp_path / "var",
        outbox=outbox,
        redis_url=redis_server.url,
        database_url=sqlite_log.url,
        offset_s=offset,
        HEARTH_SMS_RATE=str(RATE),
    )
    with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
        fleet.scheduler()
        fleet.worker("worker-1", threads=4)
        fleet.worker("worker-2", threads=4)
        fleet.wait_worker_ready("worker-1")
        fleet.wait_worker_ready("worker-2")
        wait_planned(redis, COUPLES, fleet)
        assert seconds_before(due, offset) > 0, f"planned after 21:00\n{fleet.logs()}"
        done = wait_until(all_sent(sqlite_log.prompts, expected), LEAD_S + FINISH_S, fleet)
        died = fleet.died()
        logs = fleet.logs()
        fleet.stop_all()

    result = tally(outbox, expected, sqlite_log.prompts)
    assert done, f"{result}\n{logs}"
    assert not died, f"{died}\n{logs}"
    assert result.exactly_once, f"{result}\n{logs}"

    sent = sorted(
        datetime.fromisoformat(json.loads(line)["sent_at"]) for line in outbox_lines(outbox)
    )
    # A text's sent_at trails the slot it took (the limiter's key is read from the clock
    # before the round trip to Redis) by a few milliseconds; counted over windows shorter by
    # TRAIL, the texts' slots lie within one second, which spans at most rate + limit.
    limit, _ = bucket_for(RATE)
    busiest = max(_within(sent, start, timedelta(seconds=1) - TRAIL) for start in sent)
    assert busiest <= RATE + limit, f"{busiest} texts within one second: {sent}"
    assert sent[0] >= due
    overall = (len(sent) - 1) / (sent[-1] - sent[0]).total_seconds()
    print(f"{len(sent)} texts at {overall:.2f}/s, at most {busiest} within a second")
    # Never faster than the rate; how close to it a loaded machine comes is the bench's to
    # measure (bench/rate_bench.py), not a test's.
    assert overall <= 1.1 * RATE, f"{overall:.2f} texts/s: {sent}"


def _within(instants: list[datetime], start: datetime, length: timedelta) -> int:
    return sum(1 for t in instants if start <= t < start + length)
