"""PostgreSQL unreachable for a few seconds across a due instant: scheduler and worker keep
running, and every text due then is sent exactly once once the database is back.

The outage is real but touches nobody else on the server: the test creates a role and a
schema of its own, the processes log in as that role, and for ``OUTAGE_S`` seconds the role
may not log in (``ALTER ROLE … NOLOGIN``) while every backend of it is terminated
(``pg_terminate_backend``) again and again; a probe checks that connecting really fails.
Then ``LOGIN`` is given back. The test reads the prompt log as the server's own user, so
its reads are unaffected.

During the outage couple-000's file gains a second ritual at the same instant, so that the
scheduler has to re-plan, which reads the database, while it is down. Two things are owed
for it: the edit is planned once the database is back (its texts of the next evening are in
the schedule within ``REPLAN_S``), and its texts at the due instant, which came due during
the outage after the file was saved, go out late (within their grace) exactly once.

The worker meets the outage when the due texts arrive: each claim fails with a
``StorageError`` and is retried by Dramatiq after its backoff (15-30 s for the first retry).
``HEARTH_PROMPT_LEASE_S`` is 3 s, so that a row left pending by a connection killed between
the console write and ``mark_sent`` is taken over by the retry instead of after 5 minutes;
it must not be sent twice.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import time as time_of_day
from datetime import timedelta
from pathlib import Path
from uuid import uuid4

from redis import Redis
from sqlalchemy import Connection, Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.storage import PromptLog, make_engine, migrate
from tests.databases import requires_postgresql
from tests.faults.processes import (
    Fleet,
    RedisServer,
    all_sent,
    couple_path,
    couple_text,
    due_sends,
    hearth_env,
    next_due,
    next_local,
    seconds_before,
    sleep_until,
    tally,
    wait_planned,
    wait_until,
    write_couples,
)

COUPLES = 20  # x 2 partners: 40 texts at 21:00, and 2 more from the edit
CHECK_IN = ("check_in", "every day at 21:00")
ADDED = ("gratitude", "every day at 21:00")
LEAD_S = 10.0
OUTAGE_BEFORE_S = 3.0  # the outage starts this long before the due instant
OUTAGE_S = 6.0
REPLAN_S = 10.0  # the scheduler re-reads the config every 2 s, and backs off up to 5 s
FINISH_S = 45.0  # after the outage; a failed claim's first retry comes 15-30 s later
ADDED_S = 5.0  # after those: the edit's texts have no retry to wait for


@dataclass(frozen=True)
class OwnRole:
    name: str
    url: str  # the processes': log in as the role, its schema first on the search path
    reader_url: str  # the test's: the server's own user, the same schema
    admin: Engine


@requires_postgresql
def test_postgresql_unavailable_for_a_few_seconds(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = write_couples(tmp_path / "couples", COUPLES, [CHECK_IN])
    due, offset = next_due(time_of_day(21, 0), LEAD_S)
    outbox = tmp_path / "outbox.jsonl"
    with own_role() as role:
        migrate(role.url)
        reader = make_engine(role.reader_url)
        log = PromptLog(reader)
        env = hearth_env(
            config=config,
            data=tmp_path / "var",
            outbox=outbox,
            redis_url=redis_server.url,
            database_url=role.url,
            offset_s=offset,
            HEARTH_PROMPT_LEASE_S="3",
        )
        try:
            with Fleet(tmp_path, env) as fleet, Redis.from_url(redis_server.url) as redis:
                fleet.scheduler()
                fleet.worker(threads=4)
                fleet.wait_worker_ready()
                wait_planned(redis, COUPLES, fleet)
                start_at = due - timedelta(seconds=OUTAGE_BEFORE_S)
                margin = seconds_before(due, offset)
                assert seconds_before(start_at, offset) > 0, (
                    f"the processes took over {LEAD_S} s to start\n" + fleet.logs()
                )

                planned = due_sends(config, due)
                sleep_until(start_at, offset)
                with outage(role) as report:
                    time.sleep(0.5)
                    edited = couple_path(config, 0)
                    scratch = edited.with_suffix(".tmp")
                    scratch.write_text(couple_text(0, [CHECK_IN, ADDED]), encoding="utf-8")
                    os.replace(scratch, edited)
                    time.sleep(OUTAGE_S - 0.5)
                added = due_sends(config, due) - planned
                assert len(planned) == COUPLES * 2
                assert len(added) == 2
                tomorrow = next_local(time_of_day(21, 0), due + timedelta(seconds=1))
                next_evening = {
                    e for e in due_sends(config, tomorrow) if e.startswith("couple-000/gratitude/")
                }
                assert len(next_evening) == 2
                replanned = wait_until(
                    lambda: all(redis.zscore("hearth:due", e) is not None for e in next_evening),
                    REPLAN_S,
                    fleet,
                )

                done = wait_until(all_sent(log, planned), FINISH_S, fleet)
                # The edit's texts, once planned, go out before the retries of the others.
                done = wait_until(all_sent(log, added), ADDED_S, fleet) and done
                died = fleet.died()
                running = fleet.running()
                logs = fleet.logs()
                fleet.stop_all()

            result = tally(outbox, planned, log, others=frozenset(added))
            edit = tally(outbox, added, log, others=frozenset(planned))
            print(
                f"ready {margin:.1f} s before the due instant; "
                f"database refused logins for {OUTAGE_S} s from {OUTAGE_BEFORE_S} s before "
                f"the due instant ({report.terminated} backends terminated, probe refused: "
                f"{report.refused}): planned before: {result}\nadded during the outage: {edit}; "
                f"the edit planned {REPLAN_S} s after the outage: {replanned}"
            )
            assert report.refused, "the outage did not make connecting fail"
            assert not died, (
                f"processes died during the outage: {died} (still running: {running}); "
                f"finished: {done}\n{result}\n{logs}"
            )
            assert result.exactly_once, f"texts planned before the outage: {result}\n{logs}"
            assert replanned, (
                f"the edit of {couple_path(config, 0).name} made during the outage was never "
                f"planned: its next evening's texts are not in the schedule {REPLAN_S} s after "
                f"the outage ({sorted(next_evening)})\n{logs}"
            )
            assert edit.exactly_once, (
                f"the ritual added to {couple_path(config, 0).name} during the outage: {edit}"
                f"\n{logs}"
            )
        finally:
            reader.dispose()


@contextmanager
def own_role() -> Iterator[OwnRole]:
    """A login role and a schema it owns, on DATABASE_URL's server; dropped afterwards."""
    server = os.environ["DATABASE_URL"]  # a PostgreSQL server: @requires_postgresql
    parsed = make_url(server)
    name = f"hearth_fault_{uuid4().hex[:12]}"
    password = uuid4().hex  # hex: safe to write into the statement
    admin = make_engine(server)
    search_path = f"{parsed.query.get('options', '')} -csearch_path={name}".strip()
    url = parsed.set(username=name, password=password).update_query_dict(
        {"options": search_path, "application_name": name}
    )
    reader = parsed.update_query_dict({"options": search_path})
    try:
        with admin.begin() as conn:
            conn.execute(text(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'"))
            conn.execute(text(f'CREATE SCHEMA "{name}" AUTHORIZATION "{name}"'))
        yield OwnRole(
            name,
            url.render_as_string(hide_password=False),
            reader.render_as_string(hide_password=False),
            admin,
        )
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{name}" NOLOGIN'))
            _terminate(conn, name)
            conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


@dataclass
class OutageReport:
    terminated: int = 0
    refused: bool = False


@contextmanager
def outage(role: OwnRole) -> Iterator[OutageReport]:
    """For the block: the role may not log in, and its backends are terminated every 0.1 s."""
    report = OutageReport()
    over = threading.Event()

    def terminate_all() -> None:
        while not over.wait(0.1):
            with role.admin.begin() as conn:
                report.terminated += _terminate(conn, role.name)

    with role.admin.begin() as conn:
        conn.execute(text(f'ALTER ROLE "{role.name}" NOLOGIN'))
        report.terminated += _terminate(conn, role.name)
    terminator = threading.Thread(target=terminate_all, name="terminator")
    terminator.start()
    try:
        probe = make_engine(role.url)
        try:
            with probe.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError:  # 'role … is not permitted to log in'
            report.refused = True
        finally:
            probe.dispose()
        yield report
    finally:
        over.set()
        terminator.join()
        with role.admin.begin() as conn:
            conn.execute(text(f'ALTER ROLE "{role.name}" LOGIN'))


def _terminate(conn: Connection, role: str) -> int:
    rows = conn.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE usename = :role AND pid <> pg_backend_pid()"
        ),
        {"role": role},
    ).all()
    return sum(1 for (ok,) in rows if ok)
