"""The prompt log against real databases: a SQLite file and, with DATABASE_URL, PostgreSQL.

Every test that takes ``url``, ``engine`` or ``log`` runs on both; without DATABASE_URL the
PostgreSQL half skips (and fails in CI, see conftest).
"""

from __future__ import annotations

import multiprocessing
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError

from service.domain.sends import planned_sends
from service.storage import (
    DEFAULT_LEASE,
    Base,
    Claim,
    Prompt,
    PromptLog,
    PromptState,
    StorageError,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from tests.databases import BACKENDS, database
from tests.domain.builders import couple, utc

NOW = datetime(2026, 11, 27, 18, 30, tzinfo=UTC)
LEASE = DEFAULT_LEASE
BERLIN = ZoneInfo("Europe/Berlin")
RACERS = 8


def _prompt(event: str = "alex-and-sam/date_night/20261127T1930/prompt/alex", **kw: str) -> Prompt:
    couple = kw.get("couple", "alex-and-sam")
    return Prompt(
        event_id=event,
        occurrence_id=event.rsplit("/", 2)[0],
        couple=couple,
        ritual="date_night",
        partner=kw.get("partner", "alex"),
        purpose="prompt",
        due_at=NOW,
    )


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as found:
        yield found


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


@pytest.fixture
def log(engine: Engine) -> PromptLog:
    return PromptLog(engine, lease=LEASE)


# --- schema and migrations --------------------------------------------------------------


def test_migrate_brings_an_empty_database_to_head_and_again_is_a_no_op(url: str) -> None:
    assert current_revision(url) is None

    migrate(url)
    engine = make_engine(url)
    try:
        assert PromptLog(engine).claim(_prompt(), NOW)
        tables = set(inspect(engine).get_table_names())
        migrate(url)

        assert current_revision(url) == head_revision()
        assert (
            set(inspect(engine).get_table_names())
            == tables
            == {
                "alembic_version",
                "prompts",
                "partners",
                "replies",
                "answers",
                "occurrence_changes",
                "dashboard_tokens",
                "feed_tokens",
                "ritual_versions",
            }
        )
        assert PromptLog(engine).counts()[PromptState.PENDING] == 1
    finally:
        engine.dispose()


def test_models_and_migrations_describe_the_same_schema(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)

    assert differences == []


def test_prompt_table_holds_no_phone_number_and_no_message_body(engine: Engine) -> None:
    columns = {c["name"] for c in inspect(engine).get_columns("prompts")}

    assert columns == {
        "id", "event_id", "occurrence_id", "couple", "ritual", "partner", "purpose", "state",
        "due_at", "claimed_at", "attempts", "retry_at", "sent_at", "provider_id", "error",
        "created_at", "updated_at", "delivery_status", "delivery_code", "delivery_at",
        "segments", "words_digest",
    }  # fmt: skip
    forbidden = ("body", "text", "message", "phone", "number", "to", "from")
    assert [c for c in columns if any(word in c.split("_") for word in forbidden)] == []


def test_state_column_refuses_a_state_outside_the_enum(engine: Engine) -> None:
    insert = text(
        "INSERT INTO prompts (event_id, occurrence_id, couple, ritual, partner, purpose, state,"
        " due_at, attempts, created_at, updated_at)"
        " VALUES ('e', 'o', 'c', 'r', 'p', 'prompt', :state, :at, 1, :at, :at)"
    )
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"state": "delivered", "at": "2026-01-01 00:00:00"})


def test_event_id_is_unique_in_the_table_itself(engine: Engine) -> None:
    insert = text(
        "INSERT INTO prompts (event_id, occurrence_id, couple, ritual, partner, purpose, state,"
        " due_at, attempts, created_at, updated_at)"
        " VALUES ('e', 'o', 'c', 'r', 'p', 'prompt', 'pending', :at, 1, :at, :at)"
    )
    with engine.begin() as conn:
        conn.execute(insert, {"at": "2026-01-01 00:00:00"})
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(insert, {"at": "2026-01-01 00:00:00"})


def test_database_migrated_by_a_newer_hearth_is_refused_with_storage_error(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))

    with pytest.raises(StorageError, match="9999"):
        migrate(engine.url.render_as_string(hide_password=False))


# --- claiming -----------------------------------------------------------------------------


def test_claiming_the_same_event_twice_claims_it_once(log: PromptLog) -> None:
    assert log.claim(_prompt(), NOW) is Claim.NEW
    assert log.claim(_prompt(), NOW + timedelta(seconds=1)) is Claim.NOT_CLAIMED

    record = log.get(_prompt().event_id)
    assert record is not None
    assert (record.state, record.attempts, record.claimed_at) == (PromptState.PENDING, 1, NOW)


def test_a_sent_prompt_is_never_claimed_again_even_after_the_lease(log: PromptLog) -> None:
    log.claim(_prompt(), NOW)
    assert log.mark_sent(_prompt().event_id, "SM123", NOW) is True

    assert log.claim(_prompt(), NOW) is Claim.NOT_CLAIMED
    assert log.claim(_prompt(), NOW + 10 * LEASE) is Claim.NOT_CLAIMED
    record = log.get(_prompt().event_id)
    assert record is not None
    assert (record.state, record.provider_id, record.sent_at) == (PromptState.SENT, "SM123", NOW)


@pytest.mark.parametrize(
    ("settle", "state"),
    [
        (lambda log, e: log.mark_failed(e, "21610: unsubscribed recipient", NOW), "failed"),
        (lambda log, e: log.mark_missed(e, "quiet hours outlasted the ritual", NOW), "missed"),
    ],
    ids=["failed", "missed"],
)
def test_failed_and_missed_prompts_are_never_claimed_again(
    log: PromptLog, settle: Callable[[PromptLog, str], bool], state: str
) -> None:
    log.claim(_prompt(), NOW)
    assert settle(log, _prompt().event_id) is True

    assert log.claim(_prompt(), NOW + 10 * LEASE) is Claim.NOT_CLAIMED
    record = log.get(_prompt().event_id)
    assert record is not None
    assert record.state == PromptState(state)
    assert record.state.is_final


def test_transitions_out_of_a_final_state_are_refused(log: PromptLog) -> None:
    event = _prompt().event_id
    log.claim(_prompt(), NOW)
    log.mark_sent(event, "SM1", NOW)
    later = NOW + timedelta(minutes=1)

    assert log.mark_sent(event, "SM2", later) is False
    assert log.mark_failed(event, "boom", later) is False
    assert log.mark_missed(event, "late", later) is False
    assert log.release(event, "retry", later) is False
    record = log.get(event)
    assert record is not None
    assert (record.state, record.provider_id, record.error) == (PromptState.SENT, "SM1", None)
    assert record.updated_at == NOW


def test_mark_failed_records_the_error_with_phone_numbers_masked(log: PromptLog) -> None:
    event = _prompt().event_id
    log.claim(_prompt(), NOW)

    assert log.mark_failed(event, "21211: Invalid 'To' Phone Number: +1 555-010-9999", NOW)

    record = log.get(event)
    assert record is not None
    assert record.state == PromptState.FAILED
    assert record.error == "21211: Invalid 'To' Phone Number: <number>"
    assert record.sent_at is None


def test_settling_an_event_never_claimed_changes_nothing(log: PromptLog) -> None:
    assert log.mark_sent("nobody/x/prompt/alex", "SM1", NOW) is False
    assert log.mark_failed("nobody/x/prompt/alex", "boom", NOW) is False
    assert log.get("nobody/x/prompt/alex") is None
    assert sum(log.counts().values()) == 0


# --- the lease: a worker that died after claiming ------------------------------------------


def test_a_pending_claim_older_than_the_lease_is_taken_over(log: PromptLog) -> None:
    log.claim(_prompt(), NOW)
    later = NOW + LEASE + timedelta(microseconds=1)

    assert log.claim(_prompt(), later) is Claim.TAKEN_OVER

    record = log.get(_prompt().event_id)
    assert record is not None
    assert (record.state, record.attempts, record.claimed_at) == (PromptState.PENDING, 2, later)
    assert log.claim(_prompt(), later) is Claim.NOT_CLAIMED


def test_a_claim_no_older_than_the_lease_is_left_to_its_worker(log: PromptLog) -> None:
    log.claim(_prompt(), NOW)

    assert log.claim(_prompt(), NOW + LEASE) is Claim.NOT_CLAIMED
    record = log.get(_prompt().event_id)
    assert record is not None
    assert (record.attempts, record.claimed_at) == (1, NOW)


def test_a_released_claim_can_be_claimed_again_at_once(log: PromptLog) -> None:
    event = _prompt().event_id
    log.claim(_prompt(), NOW)

    assert log.release(event, "20429: too many requests", NOW) is True
    assert log.claim(_prompt(), NOW + timedelta(seconds=1)) is Claim.RECLAIMED

    record = log.get(event)
    assert record is not None
    assert (record.state, record.attempts, record.error) == (
        PromptState.PENDING,
        2,
        "20429: too many requests",
    )


# --- races -------------------------------------------------------------------------------


def _race(claim: Callable[[], object]) -> list[bool]:
    start = threading.Barrier(RACERS)

    def racer() -> bool:
        start.wait(timeout=30)
        return bool(claim())

    with ThreadPoolExecutor(RACERS) as pool:
        futures = [pool.submit(racer) for _ in range(RACERS)]
        return [f.result(timeout=60) for f in futures]


def test_threads_claiming_one_event_at_once_get_exactly_one_claim(log: PromptLog) -> None:
    results = _race(lambda: log.claim(_prompt(), NOW))

    assert sorted(results) == [False] * (RACERS - 1) + [True]
    record = log.get(_prompt().event_id)
    assert record is not None
    assert record.attempts == 1


def test_threads_taking_over_one_stale_claim_get_exactly_one(log: PromptLog) -> None:
    log.claim(_prompt(), NOW)
    later = NOW + 2 * LEASE

    results = _race(lambda: log.claim(_prompt(), later))

    assert sorted(results) == [False] * (RACERS - 1) + [True]
    record = log.get(_prompt().event_id)
    assert record is not None
    assert record.attempts == 2


def _claim_in_a_process(
    url: str, prompt: Prompt, start: Barrier, results: Queue[tuple[str, object]]
) -> None:
    """Runs in a spawned process: claim once, report the outcome (or the error)."""
    engine = make_engine(url)
    try:
        log = PromptLog(engine)
        start.wait(timeout=60)
        results.put(("claimed", bool(log.claim(prompt, NOW))))
    except Exception as e:  # reported to the test, which fails on it
        results.put(("error", repr(e)))
    finally:
        engine.dispose()


def test_processes_claiming_one_event_at_once_get_exactly_one_claim(
    url: str, engine: Engine
) -> None:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    results: Queue[tuple[str, object]] = context.Queue()
    processes = [
        context.Process(target=_claim_in_a_process, args=(url, _prompt(), start, results))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    try:
        outcomes = [results.get(timeout=120) for _ in processes]
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.terminate()
                process.join()
        results.close()
        results.join_thread()

    assert sorted(outcomes, key=repr) == [("claimed", False), ("claimed", True)]
    assert [p.exitcode for p in processes] == [0, 0]
    assert PromptLog(engine).counts()[PromptState.PENDING] == 1


# --- time ----------------------------------------------------------------------------------

INSTANTS = [
    datetime(2026, 3, 29, 1, 59, 59, 999999, tzinfo=BERLIN),  # the last instant before the gap
    datetime(2026, 11, 1, 1, 30, fold=1, tzinfo=ZoneInfo("America/New_York")),  # second 01:30
    datetime(2026, 6, 30, 23, 59, tzinfo=timezone(timedelta(hours=-9, minutes=-30))),
    datetime(2000, 1, 3, tzinfo=UTC),
]


@pytest.mark.parametrize("instant", INSTANTS, ids=str)
def test_aware_datetimes_come_back_as_the_same_instant_in_utc(
    log: PromptLog, instant: datetime
) -> None:
    prompt = replace(_prompt("e"), due_at=instant)
    log.claim(prompt, instant)
    log.mark_sent("e", None, instant)

    record = log.get("e")
    assert record is not None
    expected = instant.astimezone(UTC)
    for value in (record.due_at, record.claimed_at, record.sent_at, record.created_at):
        assert value == expected
        assert value is not None
        assert value.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(log: PromptLog) -> None:
    with pytest.raises(ValueError, match="due_at"):
        Prompt("e", "o", "c", "r", "p", "prompt", datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="now"):
        log.claim(_prompt(), datetime(2026, 1, 1))
    assert log.get(_prompt().event_id) is None


def test_prompt_from_a_planned_send_keeps_its_identity_and_due_time_not_its_body() -> None:
    c = couple({"kind": "date_night", "schedule": "every friday at 19:30"})
    send = planned_sends(c, utc(2026, 11, 23), utc(2026, 11, 30))[0]

    prompt = Prompt.from_planned(send)

    assert (prompt.event_id, prompt.occurrence_id, prompt.couple, prompt.partner) == (
        send.event_id,
        send.occurrence_id,
        send.couple,
        send.partner,
    )
    assert prompt.due_at == send.due
    assert prompt.due_at.tzinfo is UTC
    assert "body" not in Prompt.__dataclass_fields__


# --- counts --------------------------------------------------------------------------------


def test_counts_tally_every_state_for_all_couples_or_one(log: PromptLog) -> None:
    for n, couple_id in enumerate(["alex-and-sam", "alex-and-sam", "pat-and-lee"]):
        log.claim(_prompt(f"{couple_id}/check_in/2026112{n}T2100/prompt/a", couple=couple_id), NOW)
    log.mark_sent("alex-and-sam/check_in/20261120T2100/prompt/a", "SM1", NOW)

    assert log.counts() == {
        PromptState.PENDING: 2,
        PromptState.SENT: 1,
        PromptState.FAILED: 0,
        PromptState.MISSED: 0,
        PromptState.UNKNOWN: 0,
    }
    assert log.counts(couple="pat-and-lee")[PromptState.PENDING] == 1
    assert log.counts(couple="alex-and-sam")[PromptState.SENT] == 1


# --- engines and errors --------------------------------------------------------------------


def test_sqlite_engine_creates_the_directory_and_uses_wal_foreign_keys_and_busy_timeout(
    tmp_path: Path,
) -> None:
    path = tmp_path / "var" / "data" / "hearth.sqlite3"
    migrate(f"sqlite:///{path}")
    engine = make_engine(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            pragmas = [
                conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "foreign_keys", "busy_timeout")
            ]
    finally:
        engine.dispose()

    assert path.is_file()
    assert pragmas[0] == "wal"
    assert pragmas[1] == 1
    assert isinstance(pragmas[2], int)
    assert pragmas[2] >= 1000
    with closing(sqlite3.connect(path)) as raw:  # WAL is a property of the file, not the pool
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_postgresql_url_without_a_driver_uses_psycopg() -> None:
    engine = make_engine("postgresql://hearth@db.invalid:5432/hearth")

    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    engine.dispose()


def test_unreachable_database_raises_storage_error_without_the_password() -> None:
    url = "postgresql://hearth:s3cret-pw@127.0.0.1:1/hearth"

    with pytest.raises(StorageError) as caught:
        migrate(url)
    engine = make_engine(url)
    try:
        with pytest.raises(StorageError) as claimed:
            PromptLog(engine).claim(_prompt(), NOW)
    finally:
        engine.dispose()

    for error in (caught.value, claimed.value):
        assert "s3cret-pw" not in str(error)
        assert error.url in {
            "postgresql://hearth:***@127.0.0.1:1/hearth",
            "postgresql+psycopg://hearth:***@127.0.0.1:1/hearth",
        }
        assert "127.0.0.1" in str(error)


def test_sqlite_file_that_cannot_be_created_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")

    with pytest.raises(StorageError, match="not-a-directory"):
        migrate(f"sqlite:///{blocker / 'hearth.sqlite3'}")


def test_unsupported_database_url_raises_storage_error() -> None:
    with pytest.raises(StorageError, match="unsupported database 'mysql'"):
        make_engine("mysql://hearth:pw@localhost/hearth")
