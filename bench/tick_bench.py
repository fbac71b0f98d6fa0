"""Benchmark: what an idle scheduler tick costs with 10, 1,000 and 100,000 couples.

An idle tick is the common case, many times a second: nothing due, nobody's plan running
short, no re-plan waiting. Its cost must not grow with the number of couples ([E] 13: a tick
used to read the whole ``planned_until`` set and build a set of every couple).

For each size, one fresh embedded Valkey; the couples are copies of one example couple under
distinct ids, planned a horizon ahead (``planned_until`` and the plan digests written as the
scheduler writes them, so ``set_couples`` re-plans none); then ``Scheduler.tick`` is timed
over ``--ticks`` idle ticks, with the Redis commands each one sent (INFO commandstats).

Run
    .venv/bin/python bench/tick_bench.py
    .venv/bin/python bench/tick_bench.py --sizes 10,100000 --ticks 2000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def _commands(client: object) -> int:
    stats = client.info("commandstats")  # type: ignore[attr-defined]
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


def measure(size: int, ticks: int) -> tuple[float, float, float]:
    """(median µs per idle tick, p99 µs, Redis commands per tick) for ``size`` couples."""
    import redis

    from service.config.loading import load_couple_file
    from service.embedded_redis import EmbeddedRedis
    from service.scheduler.planner import Scheduler, couple_digest
    from service.scheduler.store import ScheduleStore

    example = load_couple_file(ROOT / "config" / "couples" / "alex-and-sam.yaml")
    couples = {f"c{i:06d}": example.model_copy(update={"id": f"c{i:06d}"}) for i in range(size)}
    tmp = Path(tempfile.mkdtemp(prefix="ht-"))
    server = EmbeddedRedis(tmp / "data")
    try:
        client = redis.Redis.from_url(server.start())
        until = int((NOW + timedelta(days=2)).timestamp() * 1000)
        ids = list(couples)
        for first in range(0, size, 10_000):
            chunk = ids[first : first + 10_000]
            client.zadd("hearth:planned_until", dict.fromkeys(chunk, until))
            client.hset("hearth:plan-digest", mapping={i: couple_digest(couples[i]) for i in chunk})
        scheduler = Scheduler(ScheduleStore(client, queue="prompts"), client)
        if scheduler.set_couples(couples, NOW):
            raise SystemExit("FAIL: set_couples re-planned couples whose digest matched")
        scheduler.tick(NOW)  # warm: scripts loaded
        client.config_resetstat()
        times = []
        for i in range(ticks):
            t = time.perf_counter()
            scheduler.tick(NOW + timedelta(milliseconds=i))
            times.append((time.perf_counter() - t) * 1e6)
        commands = _commands(client) / ticks
        client.close()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1], commands


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,1000,100000")
    parser.add_argument("--ticks", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"{'couples':>9} | {'idle tick p50':>13} | {'idle tick p99':>13} | Redis commands/tick")
    for size in (int(s) for s in args.sizes.split(",")):
        p50, p99, commands = measure(size, args.ticks)
        print(f"{size:>9,} | {p50:>10.0f} µs | {p99:>10.0f} µs | {commands:.1f}")


if __name__ == "__main__":
    main()
