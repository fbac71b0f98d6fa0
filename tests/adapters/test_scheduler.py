"""The scheduler against a real Redis: atomic claims, catch-up with grace, edits, restarts."""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from service.domain.changes import Change
from service.domain.events import Purpose, SendId, parse_event_id
from service.domain.occurrences import occurrences
from service.domain.sends import extra_send, planned_sends
from service.scheduler import ScheduledEvent, ScheduleStore
from service.scheduler.follow_ups import ScheduleFollowUps
from service.scheduler.planner import Grace, Scheduler, scheduled_event, scheduled_events
from service.scheduler.replans import ReplanQueue
from service.storage import StorageError
from tests.domain.builders import couple, utc

if TYPE_CHECKING:
    from redis import Redis

QUEUE = "prompts"


@pytest.fixture
def redis(redis_client: Redis) -> Redis:
    return redis_client


def _queued(redis: Redis, actor: str = "send_prompt") -> list[dict[str, object]]:
    """The queued messages for ``actor`` (later events share the queue)."""
    ids = [i.decode() for i in redis.lrange(f"dramatiq:{QUEUE}", 0, -1)]
    raw = redis.hmget(f"dramatiq:{QUEUE}.msgs", ids) if ids else []
    messages = [json.loads(m) for m in raw if m is not None]
    return [m for m in messages if m["actor_name"] == actor]


def _scheduler(redis: Redis, **kwargs: object) -> Scheduler:
    return Scheduler(ScheduleStore(redis, queue=QUEUE), redis, **kwargs)  # type: ignore[arg-type]


def test_two_schedulers_racing_enqueue_each_due_event_exactly_once(redis: Redis) -> None:
    now = utc(2026, 11, 25, 12)
    events = [
        ScheduledEvent(f"c/r/{i}", "c", now - timedelta(seconds=i), now + timedelta(hours=1),
                       "send_prompt", {"event_id": f"c/r/{i}", "couple": "c"})
        for i in range(3000)
    ]  # fmt: skip
    ScheduleStore(redis, queue=QUEUE).add(events)
    totals: list[int] = []
    clients = [redis.__class__(connection_pool=redis.connection_pool) for _ in range(2)]

    def race(client: Redis) -> None:
        store = ScheduleStore(client, queue=QUEUE)
        total = 0
        while (claimed := store.claim_due(now, limit=100)).enqueued:
            total += claimed.enqueued
        totals.append(total)

    threads = [threading.Thread(target=race, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    queued = _queued(redis)
    assert sum(totals) == 3000
    assert len(queued) == 3000
    assert len({m["kwargs"]["event_id"] for m in queued}) == 3000  # type: ignore[index]
    assert all(n > 0 for n in totals), "both schedulers took part"


def test_event_claimed_once_is_never_scheduled_again(redis: Redis) -> None:
    store = ScheduleStore(redis, queue=QUEUE)
    now = utc(2026, 11, 25, 12)
    event = ScheduledEvent(
        "c/r/1", "c", now, now + timedelta(hours=2), "send_prompt", {"couple": "c"}
    )
    assert store.add([event]) == 1
    assert store.claim_due(now).enqueued == 1
    assert store.add([event]) == 0
    assert store.claim_due(now + timedelta(minutes=1)).enqueued == 0
    assert len(_queued(redis)) == 1


def test_one_claim_larger_than_luas_unpack_limit_moves_every_event(redis: Redis) -> None:
    # The claim writes with bulk commands sliced under Lua's ~8,000-value unpack limit; a
    # batch of 9,001 (18,002 values for HSET) must cross several slices and lose nothing.
    store = ScheduleStore(redis, queue=QUEUE)
    now = utc(2026, 11, 25, 12)
    events = [
        ScheduledEvent(f"c{i % 7}/r/{i}", f"c{i % 7}", now, now + timedelta(hours=1),
                       "send_prompt", {"event_id": f"c{i % 7}/r/{i}"})
        for i in range(9001)
    ]  # fmt: skip
    store.add([*events[:-1], replace(events[-1], deadline=now - timedelta(seconds=1))])
    claimed = store.claim_due(now, limit=10_000)
    assert claimed.enqueued == 9000
    assert claimed.missed == [events[-1].event_id]
    assert len({m["kwargs"]["event_id"] for m in _queued(redis)}) == 9000  # type: ignore[index]
    assert store.next_due() is None
    assert store.add(events) == 0, "every one of them is marked fired"


def test_couple_index_forgets_claimed_events_after_a_day(redis: Redis) -> None:
    store = ScheduleStore(redis, queue=QUEUE)
    now = utc(2026, 11, 25, 12)

    def event(i: int, at: datetime) -> ScheduledEvent:
        return ScheduledEvent(f"c/r/{i}", "c", at, at + timedelta(hours=1), "send_prompt", {})

    store.add([event(1, now), event(2, now + timedelta(days=1, hours=1))], now)
    assert store.claim_due(now).enqueued == 1
    assert redis.zcard("hearth:couple:c") == 2, "the claim leaves the index alone"
    later = now + timedelta(days=1, minutes=1)
    store.add([event(3, later + timedelta(hours=3))], later)
    assert [m.decode() for m in redis.zrange("hearth:couple:c", 0, -1)] == ["c/r/2", "c/r/3"]
    assert store.drop_couple("c") == 2
    assert store.next_due() is None


def test_message_in_the_queue_is_what_dramatiq_would_have_enqueued(redis: Redis) -> None:
    c = couple({"kind": "check_in"})
    now = utc(2026, 11, 25, 12)
    events = scheduled_events(c, now, now + timedelta(days=1))
    store = ScheduleStore(redis, queue=QUEUE)
    store.add(events)
    store.claim_due(events[0].fire_at)
    (message, *_) = _queued(redis)
    assert set(message) == {
        "queue_name", "actor_name", "args", "kwargs", "options", "message_id", "message_timestamp",
    }  # fmt: skip
    assert message["actor_name"] == "send_prompt"
    assert message["queue_name"] == QUEUE
    kwargs = message["kwargs"]
    assert isinstance(kwargs, dict)
    assert kwargs["couple"] == "alex-sam"
    assert kwargs["purpose"] == "prompt"


def test_downtime_sends_late_within_grace_once_and_records_older_as_missed(
    redis: Redis,
) -> None:
    # check-in every day at 21:00 New York (02:00 UTC); grace 2 h.
    c = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    missed: list[str] = []
    scheduler = _scheduler(redis, grace=Grace(prompt=timedelta(hours=2)), on_missed=missed.extend)
    start = utc(2026, 11, 20, 12)
    scheduler.set_couples({c.id: c}, start)
    assert scheduler.tick(start).enqueued == 0
    # Down from 12:00 UTC on the 20th until 03:30 UTC on the 25th: the 21st..24th prompts
    # (02:00 UTC) are older than 2 h and the 25th's is 1.5 h late.
    back = utc(2026, 11, 25, 3, 30)
    result = scheduler.tick(back)
    again = scheduler.tick(back + timedelta(minutes=1))
    queued = _queued(redis)
    assert result.enqueued == 2  # the 25th's prompt, to each partner
    assert again.enqueued == 0
    assert again.missed == []
    assert {m["kwargs"]["event_id"] for m in queued} == {  # type: ignore[index]
        "alex-sam/check_in/20261124T2100/prompt/alex",
        "alex-sam/check_in/20261124T2100/prompt/sam",
    }
    assert len(missed) == len(result.missed)
    # The weekly summaries due on Sunday the 22nd are texts too: past their grace, missed.
    ids = [parse_event_id(m) for m in missed]
    assert all(isinstance(i, SendId) for i in ids)
    summaries = sorted(m for m in missed if "/_week/" in m)
    assert summaries == [
        "alex-sam/_week/20261116/summary/alex",
        "alex-sam/_week/20261116/summary/sam",
    ]
    prompts = [m for m in missed if "/_week/" not in m]
    days = sorted({m.split("/")[2][:8] for m in prompts})
    assert days == ["20261120", "20261121", "20261122", "20261123"]
    assert len(prompts) == 8


def test_reminder_is_missed_once_its_occurrence_has_started(redis: Redis) -> None:
    c = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["3h"]})
    scheduler = _scheduler(
        redis, grace=Grace(prompt=timedelta(hours=2), reminder=timedelta(days=1))
    )
    start = utc(2026, 6, 1, 12)
    scheduler.set_couples({c.id: c}, start)
    scheduler.tick(start)
    # 19:00 EDT = 23:00 UTC; its 3h reminder was due at 20:00 UTC; we come back at 23:30.
    result = scheduler.tick(utc(2026, 6, 1, 23, 30))
    assert {m.split("/")[-2] for m in result.missed} == {"reminder-3h"}
    assert {m["kwargs"]["purpose"] for m in _queued(redis)} == {"prompt"}  # type: ignore[index]


def test_config_edit_replaces_future_sends_and_removal_drops_them(redis: Redis) -> None:
    now = utc(2026, 11, 25, 12)
    before = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    after = couple({"kind": "check_in", "schedule": "every day at 20:00"})
    scheduler = _scheduler(redis)
    store = ScheduleStore(redis, queue=QUEUE)
    scheduler.set_couples({before.id: before}, now)
    scheduler.tick(now)
    assert all("T2100" in event_id for event_id, _ in store.pending())
    scheduler.set_couples({after.id: after}, now)
    pending = store.pending()
    assert pending
    assert all("T2000" in event_id for event_id, _ in pending)
    scheduler.set_couples({}, now)
    assert store.pending() == []


def test_restarted_scheduler_continues_without_duplicates(redis: Redis) -> None:
    c = couple({"kind": "check_in"}, {"kind": "gratitude"})
    now = utc(2026, 11, 25, 12)
    first = _scheduler(redis)
    first.set_couples({c.id: c}, now)
    first.tick(now)
    planned = ScheduleStore(redis, queue=QUEUE).pending()
    t = now
    while t < now + timedelta(hours=12):
        t += timedelta(minutes=30)
        assert first.tick(t).missed == []
    sent_by_first = len(_queued(redis))
    second = _scheduler(redis)  # a restart: nothing in memory, everything in Redis
    second.set_couples({c.id: c}, now + timedelta(hours=12))
    second.tick(now + timedelta(hours=12))
    assert len(_queued(redis)) == sent_by_first
    # Ticking every 30 minutes for three days sends every planned event on time, once.
    t = now + timedelta(hours=12)
    while t < now + timedelta(days=3):
        t += timedelta(minutes=30)
        assert second.tick(t).missed == []
    ids = [m["kwargs"]["event_id"] for m in _queued(redis)]  # type: ignore[index]
    assert len(ids) == len(set(ids))
    assert {event_id for event_id, _ in planned} <= set(ids)


def test_tick_cost_follows_due_events_not_couples(redis: Redis) -> None:
    couples = {f"c{i}": couple({"kind": "check_in"}, couple=f"c{i}") for i in range(50)}
    scheduler = _scheduler(redis, horizon=timedelta(days=2))
    now = utc(2026, 11, 25, 12)
    scheduler.set_couples(couples, now)
    scheduler.tick(now)
    planned_until = dict(redis.zrange("hearth:planned_until", 0, -1, withscores=True))
    scheduler.tick(now + timedelta(minutes=5))
    # Nobody's horizon ran short, so nobody was planned again.
    assert dict(redis.zrange("hearth:planned_until", 0, -1, withscores=True)) == planned_until
    assert datetime.fromtimestamp(max(planned_until.values()) / 1000, UTC) == now + timedelta(
        days=2
    )


def test_quiet_hours_hold_across_spring_forward_in_the_schedule(redis: Redis) -> None:
    c = couple(
        {"kind": "check_in", "schedule": "every day at 23:00"},
        partners=[
            {"name": "Alex", "phone": "+15550000001", "quiet_hours": "22:00-07:00"},
            {"name": "Sam", "phone": "+15550000002"},
        ],
    )
    scheduler = _scheduler(redis)
    start = utc(2026, 3, 7, 12)
    scheduler.set_couples({c.id: c}, start)
    scheduler.tick(start)
    fire = dict(ScheduleStore(redis, queue=QUEUE).pending(c.id))
    # Due 23:00 EST on Mar 7; Alex's quiet hours end at 07:00 local, which is EDT by then.
    held = fire["alex-sam/check_in/20260307T2300/prompt/alex"]
    assert held == utc(2026, 3, 8, 11, 0)  # 07:00 EDT
    assert fire["alex-sam/check_in/20260307T2300/prompt/sam"] == utc(2026, 3, 8, 4, 0)  # 23:00 EST


# --- what the claim does with snoozes, moves and re-plans ([E] 1, 2, 3, 4) -----------------


def test_a_snooze_after_the_occurrence_began_is_enqueued_by_the_claim_not_missed(
    redis: Redis,
) -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    scheduler = _scheduler(redis)
    now = utc(2026, 11, 25, 12)
    scheduler.set_couples({c.id: c}, now)
    scheduler.tick(now)
    occ = next(o for o in occurrences(c, now, now + timedelta(days=1)))
    # Replied SNOOZE 30m at 21:32: the snooze fires at 22:02, after the occurrence began.
    at = occ.start + timedelta(minutes=32)
    snooze = extra_send(c, occ, c.partner("alex"), Purpose.snooze(at))
    ScheduleFollowUps(redis, ScheduleStore(redis, queue=QUEUE)).snooze(snooze)
    claimed = scheduler.tick(snooze.at + timedelta(seconds=1))
    assert claimed.missed == []
    assert snooze.event_id in {m["kwargs"]["event_id"] for m in _queued(redis)}  # type: ignore[index]


def test_a_moved_occurrences_prompt_is_enqueued_at_its_new_time_not_missed(redis: Redis) -> None:
    c = couple({"kind": "date_night", "schedule": "every friday at 19:30", "remind": ["3h"]})
    now = utc(2026, 11, 25, 12)
    occ = next(o for o in occurrences(c, now, now + timedelta(days=7)))
    moved_to = occ.start + timedelta(days=1)
    changes = {occ.id: Change(occ.id, moved_to=moved_to)}
    scheduler = _scheduler(redis, changes=lambda _: changes, horizon=timedelta(days=4))
    scheduler.set_couples({c.id: c}, now)
    ReplanQueue(redis).add(c.id, now)  # what the MOVE's follow-up does
    scheduler.tick(now)
    pending = dict(ScheduleStore(redis, queue=QUEUE).pending(c.id))
    prompts = [e for e in pending if "/prompt@" in e]
    assert prompts
    assert all(pending[e] == moved_to for e in prompts)
    # The claim runs a moment after the fire time, as it does in real life.
    claimed = scheduler.tick(moved_to + timedelta(milliseconds=300))
    assert [m for m in claimed.missed if "/prompt@" in m] == []
    queued = {m["kwargs"]["event_id"] for m in _queued(redis)}  # type: ignore[index]
    assert set(prompts) <= queued


def test_a_scheduler_started_after_an_edit_replans_from_the_new_file(redis: Redis) -> None:
    before = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    after = couple(
        {"kind": "check_in", "schedule": "every day at 20:00"},
        {"kind": "gratitude", "schedule": "every day at 12:30"},
    )
    now = utc(2026, 11, 25, 12)
    first = _scheduler(redis)
    first.set_couples({before.id: before}, now)
    first.tick(now)
    store = ScheduleStore(redis, queue=QUEUE)
    assert all("T2100" in e or "/_week/" in e for e, _ in store.pending(before.id))
    # The file changed while no scheduler ran; a fresh one knows nothing of the old version.
    later = now + timedelta(minutes=5)
    second = _scheduler(redis)
    assert second.set_couples({after.id: after}, later) == [after.id]
    pending = [e for e, _ in store.pending(after.id) if "/_week/" not in e]
    assert pending
    assert not [e for e in pending if "T2100" in e]
    assert [e for e in pending if "/gratitude/" in e]  # the new ritual, without waiting
    # Another fresh scheduler on the same file re-plans nothing.
    assert _scheduler(redis).set_couples({after.id: after}, later) == []


def test_a_replan_keeps_snoozes_fires_and_due_unclaimed_sends(redis: Redis) -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    now = utc(2026, 11, 25, 12)
    scheduler = _scheduler(redis)
    scheduler.set_couples({c.id: c}, now)
    scheduler.tick(now)
    store = ScheduleStore(redis, queue=QUEUE)
    occ = next(o for o in occurrences(c, now, now + timedelta(days=1)))
    snooze = extra_send(c, occ, c.partner("sam"), Purpose.snooze(occ.start + timedelta(hours=1)))
    fire = extra_send(c, occ, c.partner("alex"), Purpose.fire(occ.start - timedelta(minutes=1)))
    store.add([scheduled_event(snooze), scheduled_event(fire)])
    # At 21:00:00.5 a SKIP of another ritual re-plans the couple in the same tick in which
    # the 21:00 prompts come due: they are due, not yet claimed.
    due = occ.start + timedelta(milliseconds=500)
    ReplanQueue(redis).add(c.id, due)
    claimed = scheduler.tick(due)
    queued = {m["kwargs"]["event_id"] for m in _queued(redis)}  # type: ignore[index]
    prompts = {s.event_id for s in planned_sends(c, occ.start, occ.start + timedelta(seconds=1))}
    assert prompts <= queued
    assert fire.event_id in queued
    assert claimed.missed == []
    assert snooze.event_id in dict(store.pending(c.id))
    # An edit that removes the ritual contradicts the snooze: it leaves the schedule.
    other = couple({"kind": "gratitude", "schedule": "every day at 12:30"})
    scheduler.set_couples({other.id: other}, due)
    assert snooze.event_id not in dict(store.pending(c.id))


def test_missed_ids_stay_in_redis_until_they_are_recorded(redis: Redis) -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    failures = [StorageError("sqlite:///x", "the database is away")]
    recorded: list[str] = []

    def record(ids: list[str]) -> None:
        if failures:
            raise failures.pop()
        recorded.extend(ids)

    scheduler = _scheduler(redis, on_missed=record)
    start = utc(2026, 11, 20, 12)
    scheduler.set_couples({c.id: c}, start)
    scheduler.tick(start)
    back = utc(2026, 11, 22, 12)  # the 20th's and 21st's prompts are long past their grace
    with pytest.raises(StorageError):
        scheduler.tick(back)
    store = ScheduleStore(redis, queue=QUEUE)
    waiting = store.missed()
    assert len(waiting) == 4
    assert scheduler.tick(back).missed == waiting
    assert sorted(recorded) == sorted(waiting)
    assert store.missed() == []


def test_texts_an_edit_added_during_downtime_are_claimed_late_not_skipped(redis: Redis) -> None:
    before = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    after = couple(
        {"kind": "check_in", "schedule": "every day at 21:00"},
        {"kind": "gratitude", "schedule": "every day at 20:00"},
    )
    first = _scheduler(redis)
    down = utc(2026, 11, 25, 23, 30)  # 18:30 in New York: plans in step with the file
    first.set_couples({before.id: before}, down)
    first.tick(down)
    # Everything is down from 18:30 to 20:30 New York; the gratitude ritual (20:00) is
    # added meanwhile. The restarted scheduler claims its 20:00 texts, 30 minutes late.
    back = utc(2026, 11, 26, 1, 30)
    second = _scheduler(redis)
    second.set_couples({after.id: after}, back)
    claimed = second.tick(back)
    queued = {m["kwargs"]["event_id"] for m in _queued(redis)}  # type: ignore[index]
    assert {e for e in queued if "/gratitude/" in e} == {
        "alex-sam/gratitude/20261125T2000/alex/prompt/alex",
        "alex-sam/gratitude/20261125T2000/sam/prompt/sam",
    }
    assert claimed.missed == []


def test_a_text_moved_to_a_time_that_passes_before_the_next_pass_is_claimed_late(
    redis: Redis,
) -> None:
    c = couple({"kind": "date_night", "schedule": "every friday at 19:30"})
    now = utc(2026, 11, 25, 12)
    occ = next(o for o in occurrences(c, now, now + timedelta(days=7)))
    changes: dict[str, Change] = {}
    scheduler = _scheduler(redis, changes=lambda _: changes, horizon=timedelta(days=4))
    scheduler.set_couples({c.id: c}, now)
    scheduler.tick(now)
    # At 12:00 UTC a partner moves the date to 12:05; the scheduler's next pass is 12:10.
    replied = now
    moved_to = now + timedelta(minutes=5)
    changes[occ.id] = Change(occ.id, moved_to=moved_to)
    ReplanQueue(redis).add(c.id, replied)
    claimed = scheduler.tick(now + timedelta(minutes=10))
    queued = {m["kwargs"]["event_id"] for m in _queued(redis)}  # type: ignore[index]
    assert {e for e in queued if "/prompt@" in e} == {
        f"{occ.id}/prompt@20261125T1205Z/alex", f"{occ.id}/prompt@20261125T1205Z/sam",
    }  # fmt: skip
    assert claimed.missed == []
    assert not ReplanQueue(redis).is_waiting(c.id)


def test_a_change_added_while_a_replan_runs_is_not_forgotten(redis: Redis) -> None:
    queue = ReplanQueue(redis)
    now = utc(2026, 11, 25, 12)
    queue.add("alex-sam", now)
    [seen] = queue.waiting(now)
    queue.add("alex-sam", now + timedelta(seconds=1))  # committed after the pass read it
    assert not queue.done(seen)
    [again] = queue.waiting(now)
    assert again.since == now  # the earliest change still counts
    assert queue.done(again)
    assert queue.waiting(now) == []
