"""Benchmark: a burst of texts due at one instant, sent at HEARTH_SMS_RATE by two workers.

For each rate (and once without one, for reference): a fresh embedded Valkey, a migrated
SQLite log and an outbox in a temporary directory; ``--texts`` prompts (couples of two
partners with a check-in at 21:00 Berlin) due at one instant on a shifted clock
(``HEARTH_CLOCK_OFFSET_S``); a real ``hearth scheduler`` and ``--workers`` real ``hearth
worker`` processes (``--threads`` each) send them with the console sender, every worker
holding slots of the one limiter in Redis. The processes are the fault tests' ``Fleet``
(tests/faults/processes.py), which stops all of them on the way out, failing or not.

Reported from the outbox, where ``sent_at`` is the service's clock when each text left
(after its wait for a slot):

    sends/s     (texts - 1) / (last sent_at - first sent_at)
    max in 1 s  the most texts within any one second (a sliding window from each text);
                the limiter allows rate + limit in any second (service/senders/rate.py), and
                sent_at trails a text's slot by a few ms, which can add one more
    max per s   the most texts in one second of the wall clock (whole seconds, the way a
                provider counts; the limiter's buckets divide them at 5, 10 and 20/s)
    due→last    from the due instant to the last text
    once        every prompt in the outbox exactly once, every log row ``sent``

Run
    .venv/bin/python bench/rate_bench.py
    .venv/bin/python bench/rate_bench.py --rates 1,2.5,50 --texts 100 --workers 3
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEAD_S = 10.0  # start-up of the scheduler and the workers before the due instant
SLACK_S = 30.0  # a run gives up this long after the burst should have drained


@dataclass(frozen=True)
class Run:
    rate: float | None
    texts: int
    sends_per_s: float
    max_in_window: int
    max_per_second: int
    due_to_last_s: float
    exactly_once: bool


def measure(rate: float | None, texts: int, workers: int, threads: int) -> Run:
    from redis import Redis

    from service.storage import PromptLog, make_engine, migrate
    from tests.faults.processes import (
        Fleet,
        RedisServer,
        all_sent,
        due_sends,
        hearth_env,
        next_due,
        tally,
        wait_planned,
        wait_until,
        write_couples,
    )
    from tests.waiting import outbox_lines

    couples = math.ceil(texts / 2)
    with tempfile.TemporaryDirectory(prefix="hr-") as tmp_name, RedisServer() as server:
        tmp = Path(tmp_name)
        config = write_couples(tmp / "couples", couples, [("check_in", "every day at 21:00")])
        due, offset = next_due(time_of_day(21, 0), LEAD_S)
        expected = due_sends(config, due)
        log_url = f"sqlite:///{tmp / 'hearth.sqlite3'}"
        migrate(log_url)
        outbox = tmp / "outbox.jsonl"
        extra = {} if rate is None else {"HEARTH_SMS_RATE": repr(rate)}
        env = hearth_env(
            config=config,
            data=tmp / "var",
            outbox=outbox,
            redis_url=server.url,
            database_url=log_url,
            offset_s=offset,
            **extra,
        )
        engine = make_engine(log_url)
        log = PromptLog(engine)
        try:
            with Fleet(tmp, env) as fleet, Redis.from_url(server.url) as redis:
                fleet.scheduler()
                names = [f"worker-{i + 1}" for i in range(workers)]
                for name in names:
                    fleet.worker(name, threads=threads)
                for name in names:
                    fleet.wait_worker_ready(name)
                wait_planned(redis, couples, fleet)
                drain_s = len(expected) / rate if rate else 0.0
                wait_until(all_sent(log, expected), LEAD_S + drain_s + SLACK_S, fleet)
                fleet.stop_all()
            result = tally(outbox, expected, log)
        finally:
            engine.dispose()
        sent = sorted(
            datetime.fromisoformat(json.loads(line)["sent_at"]) for line in outbox_lines(outbox)
        )
    return _run(rate, sent, due, offset, exactly_once=result.exactly_once)


def _run(
    rate: float | None, sent: list[datetime], due: datetime, offset_s: float, *, exactly_once: bool
) -> Run:
    if len(sent) < 2:  # a rate needs two texts
        return Run(rate, len(sent), math.nan, len(sent), len(sent), math.nan, exactly_once)
    second = timedelta(seconds=1)
    span_s = (sent[-1] - sent[0]).total_seconds()
    in_window = max(sum(1 for t in sent if start <= t < start + second) for start in sent)
    # The wall clock's whole seconds: the service's clock runs offset_s ahead of it.
    per_second = Counter(math.floor(t.timestamp() - offset_s) for t in sent)
    return Run(
        rate=rate,
        texts=len(sent),
        sends_per_s=(len(sent) - 1) / span_s if span_s > 0 else math.inf,
        max_in_window=in_window,
        max_per_second=max(per_second.values()),
        due_to_last_s=(sent[-1] - due).total_seconds(),
        exactly_once=exactly_once,
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="none,5,10,20", help="texts/s; none: no limit")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    rates = [None if r == "none" else float(r) for r in args.rates.split(",")]
    print(
        f"{args.texts} texts due at one instant; {args.workers} hearth worker processes x "
        f"{args.threads} threads; console sender, SQLite log, embedded Valkey"
    )
    print(
        f"{'HEARTH_SMS_RATE':>15} | {'texts':>5} | {'sends/s':>8} | {'of rate':>7} | "
        f"{'max in 1 s':>10} | {'max per s':>9} | {'due→last':>9} | once"
    )
    for rate in rates:
        started = time.monotonic()
        run = measure(rate, args.texts, args.workers, args.threads)
        share = f"{run.sends_per_s / rate:.0%}" if rate else "-"
        print(
            f"{rate if rate else 'unset':>15} | {run.texts:>5} | {run.sends_per_s:>8.2f} | "
            f"{share:>7} | {run.max_in_window:>10} | {run.max_per_second:>9} | "
            f"{run.due_to_last_s:>7.1f} s | {'yes' if run.exactly_once else 'NO'}"
            f"   ({time.monotonic() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
