"""The scheduler process against real Redis and SQLite: edits while running, a driven clock."""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis

from service.domain.clock import ManualClock
from service.domain.couples import Couple
from service.scheduler.process import run
from service.scheduler.store import ScheduleStore
from service.settings import load_settings
from service.storage import PromptLog, PromptState, make_engine, migrate
from tests.couple_texts import VALID
from tests.domain.builders import utc


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _write(path: Path, text: str, tick: int) -> None:
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + tick * 1_000_000_000))


class Running:
    def __init__(self, clock: ManualClock, stop: threading.Event, thread: threading.Thread):
        self.clock, self.stop, self.thread = clock, stop, thread


@pytest.fixture
def scheduler(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Running, Path, Redis]]:
    config = tmp_path / "couples"
    config.mkdir()
    _write(config / "a.yaml", VALID, 0)  # check-in every day at 21:00 Berlin
    database = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    migrate(database)
    for name, value in {
        "HEARTH_CONFIG_DIR": str(config),
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "REDIS_URL": redis_url,
        "DATABASE_URL": database,
    }.items():
        monkeypatch.setenv(name, value)
    clock = ManualClock(utc(2026, 11, 25, 12))
    stop = threading.Event()
    thread = threading.Thread(
        target=run,
        args=(load_settings(), clock, stop),
        kwargs={"refresh": timedelta(milliseconds=20)},
        daemon=True,
    )
    thread.start()
    redis = Redis.from_url(redis_url)
    try:
        yield Running(clock, stop, thread), config, redis
    finally:
        stop.set()
        thread.join(timeout=10)
        redis.close()
    assert not thread.is_alive()


def test_edits_while_running_replan_and_a_broken_edit_keeps_the_last_good_version(
    scheduler: tuple[Running, Path, Redis], caplog: pytest.LogCaptureFixture
) -> None:
    _, config, redis = scheduler
    store = ScheduleStore(redis, queue="prompts")

    def times() -> set[str]:
        return {event_id.split("/")[2][-4:] for event_id, _ in store.pending("a")}

    _wait(lambda: times() == {"2100"}, "the first plan")
    _write(config / "a.yaml", VALID.replace("at 21:00", "at 20:00"), 1)
    _wait(lambda: times() == {"2000"}, "the edited plan")
    with caplog.at_level(logging.ERROR, logger="hearth.config"):
        _write(config / "a.yaml", VALID.replace("at 21:00", "at 25:00"), 2)
        _wait(lambda: "rituals[0].schedule" in caplog.text, "the error to be logged")
    assert f"{config / 'a.yaml'}:9:" in caplog.text
    assert times() == {"2000"}  # the last good version keeps running
    (config / "a.yaml").unlink()
    _wait(lambda: store.pending("a") == [], "removal to drop the couple's sends")


def test_due_sends_are_enqueued_and_sends_past_grace_recorded_as_missed(
    scheduler: tuple[Running, Path, Redis], tmp_path: Path
) -> None:
    running, _, redis = scheduler
    store = ScheduleStore(redis, queue="prompts")
    _wait(lambda: bool(store.pending("a")), "the first plan")
    # 21:00 Berlin on the 25th is 20:00 UTC: enqueue it on time.
    running.clock.set(utc(2026, 11, 25, 20, 0, 30))
    _wait(lambda: redis.llen("dramatiq:prompts") == 2, "the two prompts in the queue")
    # Then the scheduler "sleeps" through the 26th's prompts: 3 h late is past the 2 h grace.
    running.clock.set(utc(2026, 11, 26, 23))
    log = PromptLog(make_engine(f"sqlite:///{tmp_path / 'hearth.sqlite3'}"))
    _wait(lambda: log.counts().get(PromptState.MISSED, 0) == 2, "two missed sends in the log")
    assert redis.llen("dramatiq:prompts") == 2
    record = log.get("a/check_in/20261126T2100/prompt/alex")
    assert record is not None
    assert record.state is PromptState.MISSED
    assert record.error == "came due past its deadline"


def test_when_one_scheduler_stops_another_carries_on_without_a_gap(
    scheduler: tuple[Running, Path, Redis],
) -> None:
    first, _, redis = scheduler
    second_stop = threading.Event()
    second = threading.Thread(
        target=run,
        args=(load_settings(), first.clock, second_stop),
        kwargs={"refresh": timedelta(milliseconds=20)},
        daemon=True,
    )
    second.start()
    try:
        store = ScheduleStore(redis, queue="prompts")
        _wait(lambda: bool(store.pending("a")), "the first plan")
        first.stop.set()  # the first scheduler dies
        first.thread.join(timeout=10)
        first.clock.set(utc(2026, 11, 25, 20, 0, 30))
        _wait(lambda: redis.llen("dramatiq:prompts") == 2, "the survivor to enqueue")
        first.clock.set(utc(2026, 11, 26, 20, 0, 30))
        _wait(lambda: redis.llen("dramatiq:prompts") == 4, "the next day's prompts")
    finally:
        second_stop.set()
        second.join(timeout=10)
    ids = [i.decode() for i in redis.lrange("dramatiq:prompts", 0, -1)]
    assert len(ids) == len(set(ids)) == 4


def _feed_renders(redis: Redis) -> list[tuple[str, dict[str, str]]]:
    found = []
    for queue in ("dramatiq:replies", "dramatiq:prompts"):
        ids = redis.lrange(queue, 0, -1)
        raw = redis.hmget(f"{queue}.msgs", ids) if ids else []
        for m in raw:
            message = json.loads(m) if m is not None else {}
            if message.get("actor_name") == "feed.render":
                found.append((queue.split(":")[1], message["kwargs"]))
    return found


def test_feeds_are_rendered_at_start_on_edits_and_every_night(
    scheduler: tuple[Running, Path, Redis],
) -> None:
    running, config, redis = scheduler
    calendar = VALID + "  - kind: date_night\n"
    # At start: every couple's feeds (ritual.changed for all of them).
    _wait(lambda: _feed_renders(redis) == [("replies", {"couple": "a"})], "the start render")
    _write(config / "a.yaml", calendar, 1)
    _wait(lambda: len(_feed_renders(redis)) == 2, "a render after the edit")
    # Nightly at 03:00 in the couple's zone: 02:00 UTC on the 26th in Berlin.
    running.clock.set(utc(2026, 11, 26, 2, 0, 30))
    nightly = {"couple": "a", "event_id": "a/feed/20261126"}
    _wait(lambda: ("prompts", nightly) in _feed_renders(redis), "the nightly render")


def test_a_restart_renders_only_the_feeds_of_couples_edited_meanwhile(
    redis_client: Redis,
) -> None:
    from service.scheduler.planner import couple_digest
    from service.scheduler.process import _feeds_rendered
    from service.scheduler.process import _feeds_to_render as to_render
    from tests.domain.builders import couple

    def _feeds_to_render(
        redis: Redis, couples: dict[str, Couple], removed: list[str]
    ) -> tuple[dict[str, str], list[str]]:
        return to_render(redis, {i: couple_digest(c) for i, c in couples.items()}, removed)

    def render(couples: dict[str, Couple], removed: list[str]) -> list[str]:
        stale, gone = _feeds_to_render(redis_client, couples, removed)
        _feeds_rendered(redis_client, stale, gone)  # their renders were queued
        return [*stale, *gone]

    a, b = couple({"kind": "date_night"}, couple="a"), couple({"kind": "date_night"}, couple="b")
    assert sorted(render({"a": a, "b": b}, [])) == ["a", "b"]
    assert render({"a": a, "b": b}, []) == [], "a restart, no edits"
    edited = couple({"kind": "date_night", "schedule": "every saturday at 20:00"}, couple="b")
    # Queueing the render failed (Redis away): nothing is recorded, so it is found again.
    assert list(_feeds_to_render(redis_client, {"a": a, "b": edited}, [])[0]) == ["b"]
    assert render({"a": a, "b": edited}, []) == ["b"]
    assert render({"b": edited}, ["a"]) == ["a"]
    assert render({"a": a, "b": edited}, []) == ["a"], "a came back"


def test_the_loop_survives_redis_and_database_errors_and_logs_them_once(
    scheduler: tuple[Running, Path, Redis],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from service.scheduler.planner import Scheduler
    from service.storage import StorageError

    running, _, redis = scheduler
    store = ScheduleStore(redis, queue="prompts")
    _wait(lambda: bool(store.pending("a")), "the first plan")
    real_tick = Scheduler.tick
    failures: list[Exception] = [
        StorageError("sqlite:///x", "database is locked"),
        *[RedisConnectionError("Connection refused")] * 5,
    ]

    def flaky_tick(self: Scheduler, now: object, batch: int = 1000) -> object:
        if failures:
            raise failures.pop()
        return real_tick(self, now, batch)  # type: ignore[arg-type]

    with caplog.at_level(logging.INFO, logger="hearth.scheduler"):
        monkeypatch.setattr(Scheduler, "tick", flaky_tick)
        running.clock.set(utc(2026, 11, 25, 20, 0, 30))
        _wait(lambda: redis.llen("dramatiq:prompts") == 2, "the prompts after the errors")
    assert running.thread.is_alive()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, "one line while it keeps failing, not one per retry"
    assert "ConnectionError" in errors[0].getMessage()
    assert any("recovered after" in r.getMessage() for r in caplog.records)


def test_an_edit_seen_while_the_database_is_away_is_planned_once_it_is_back(
    scheduler: tuple[Running, Path, Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.scheduler.planner import Scheduler
    from service.storage import StorageError

    _, config, redis = scheduler
    store = ScheduleStore(redis, queue="prompts")

    def times() -> set[str]:
        return {event_id.split("/")[2][-4:] for event_id, _ in store.pending("a")}

    _wait(lambda: times() == {"2100"}, "the first plan")
    real = Scheduler._replan
    away = [True]

    def replan(self: Scheduler, couple: Couple, now: object, **kwargs: object) -> None:
        if away[0]:  # a re-plan reads the couple's skips and moves from the database
            raise StorageError("sqlite:///x", "database is locked")
        real(self, couple, now, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Scheduler, "_replan", replan)
    # The edit is noticed (the config reports it once) while a re-plan cannot read the
    # couple's skips and moves: it must be planned once the database is back, not never.
    _write(config / "a.yaml", VALID.replace("at 21:00", "at 20:00"), 1)
    time.sleep(0.5)
    assert times() == {"2100"}
    away[0] = False
    _wait(lambda: times() == {"2000"}, "the edit planned after the outage")


def test_each_pass_writes_the_heartbeat_with_the_schedulers_clock(
    scheduler: tuple[Running, Path, Redis],
) -> None:
    running, _, redis = scheduler
    from service.scheduler.process import HEARTBEAT_KEY

    start_ms = int(running.clock.now().timestamp() * 1000)
    _wait(lambda: redis.get(HEARTBEAT_KEY) == str(start_ms).encode(), "the first heartbeat")
    running.clock.set(utc(2026, 11, 25, 13))
    later_ms = int(running.clock.now().timestamp() * 1000)
    _wait(lambda: redis.get(HEARTBEAT_KEY) == str(later_ms).encode(), "a later heartbeat")
