"""Keeping the schedule filled: each couple's sends planned a horizon ahead, then claimed.

A tick costs what is due plus the couples whose horizon runs short, never a re-plan of
every couple: each couple is planned up to ``planned_until`` (kept in Redis, so a restart or
another scheduler continues where planning stopped), and topped up when that comes within
half a horizon of now. Planning resumes from ``planned_until`` rather than from now, so
sends that fell due while every scheduler was down are still scheduled, and the claim then
sends them late (within their grace) or records them as missed, never silently drops them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, cast

from service.domain.changes import NO_CHANGES, Changes
from service.domain.sends import PROMPT, PlannedSend, planned_sends
from service.domain.wallclock import resolve, zone
from service.inbound import FEED_RENDER, WEEK_ENDED
from service.scheduler.store import Claimed, ScheduledEvent, ScheduleStore

if TYPE_CHECKING:
    from redis import Redis

    from service.domain.couples import Couple

__all__ = [
    "PROMPTS_QUEUE",
    "SEND_PROMPT",
    "Grace",
    "Scheduler",
    "is_send_event",
    "later_event_message",
    "later_events",
    "message_kwargs",
    "replan_key",
    "scheduled_event",
    "scheduled_events",
]

# The actor and queue the scheduler's messages are for (workers/prompts.py declares them).
# Later events (feed renders) travel on the same queue: the claim pushes to one queue.
SEND_PROMPT = "send_prompt"
PROMPTS_QUEUE = "prompts"
FEED_PURPOSE = "feed"
FEED_REFRESH_AT = time(3, 0)
WEEK_PURPOSE = "_week"  # not a valid ritual id, so never mistaken for one
WEEK_SUMMARY_AT = time(9, 0)


@dataclass(frozen=True, slots=True)
class Grace:
    """How late a send may still go out after downtime; later ones are recorded as missed.

    A reminder is never sent once its occurrence has started, whatever its grace.
    """

    prompt: timedelta = timedelta(hours=2)
    reminder: timedelta = timedelta(hours=2)


def scheduled_events(
    couple: Couple,
    start: datetime,
    end: datetime,
    grace: Grace = Grace(),
    changes: Changes = NO_CHANGES,
) -> list[ScheduledEvent]:
    """The couple's sends with ``at`` in ``[start, end)``, as events for the schedule store."""
    return [scheduled_event(send, grace) for send in planned_sends(couple, start, end, changes)]


def later_events(couple: Couple, start: datetime, end: datetime) -> list[ScheduledEvent]:
    """Couple-level events in ``[start, end)``, in the couple's zone:

    - ``feed.render`` every day at 03:00 for a couple with calendar rituals: it rolls the
      feed's window forward (``<couple>/feed/<local date>``);
    - ``week.ended`` every Monday at 09:00: the summary of the week before
      (``<couple>/_week/<its Monday>``).

    They are not sends: past their deadline (a day) they are run late, not recorded missed.
    """
    tz = zone(couple.timezone)
    calendar = any(r.calendar and r.enabled for r in couple.rituals)
    out = []
    day = start.astimezone(tz).date()
    while day <= end.astimezone(tz).date():
        if calendar:
            event_id = f"{couple.id}/{FEED_PURPOSE}/{day:%Y%m%d}"
            kwargs = {"couple": couple.id, "event_id": event_id}
            out.append(_later(couple, event_id, day, FEED_REFRESH_AT, FEED_RENDER, kwargs))
        if day.weekday() == 0:
            week = day - timedelta(days=7)
            event_id = f"{couple.id}/{WEEK_PURPOSE}/{week:%Y%m%d}"
            kwargs = {"couple": couple.id, "week": week.isoformat(), "event_id": event_id}
            out.append(_later(couple, event_id, day, WEEK_SUMMARY_AT, WEEK_ENDED, kwargs))
        day += timedelta(days=1)
    return [e for e in out if start <= e.fire_at < end]


def _later(
    couple: Couple, event_id: str, day: date, at: time, actor: str, kwargs: dict[str, str]
) -> ScheduledEvent:
    fire = resolve(datetime.combine(day, at), zone(couple.timezone))
    return ScheduledEvent(event_id, couple.id, fire, fire + timedelta(days=1), actor, kwargs)


def is_send_event(event_id: str) -> bool:
    """Whether the scheduled event is a text for an occurrence (``<occurrence>/<purpose>/
    <partner>``, four slashes at least) rather than a later event (two)."""
    return event_id.count("/") >= 4


def later_event_message(event_id: str) -> tuple[str, dict[str, str]] | None:
    """The actor and arguments to run a later event that came due past its deadline."""
    parts = event_id.split("/")
    if len(parts) != 3:
        return None
    couple, purpose, day = parts
    if purpose == FEED_PURPOSE:
        return FEED_RENDER, {"couple": couple, "event_id": event_id}
    if purpose == WEEK_PURPOSE:
        week = f"{day[:4]}-{day[4:6]}-{day[6:]}"
        return WEEK_ENDED, {"couple": couple, "week": week, "event_id": event_id}
    return None


class Scheduler:
    """Plans couples into a ``ScheduleStore`` and claims what is due; safe to run many of."""

    def __init__(
        self,
        store: ScheduleStore,
        redis: Redis,
        *,
        horizon: timedelta = timedelta(days=2),
        longest_catch_up: timedelta = timedelta(days=7),
        grace: Grace = Grace(),
        namespace: str = "hearth",
        on_missed: Callable[[list[str]], None] | None = None,
        changes: Callable[[str], Changes] | None = None,
    ) -> None:
        self._store = store
        self._redis = redis
        self._horizon = horizon
        self._catch_up = longest_catch_up
        self._grace = grace
        self._planned_key = f"{namespace}:planned_until"
        self._replan_key = replan_key(namespace)
        self._changes = changes or (lambda _: NO_CHANGES)
        self._on_missed = on_missed
        self._couples: dict[str, Couple] = {}

    def set_couples(self, couples: Mapping[str, Couple], now: datetime) -> None:
        """Take a new set of couples: removed ones lose their future sends, changed ones are
        re-planned from ``now``; unchanged ones keep everything (and their ids)."""
        for couple_id in set(self._couples) - set(couples):
            self._store.drop_couple(couple_id)
            self._redis.zrem(self._planned_key, couple_id)
        for couple_id, couple in couples.items():
            old = self._couples.get(couple_id)
            if old is not None and old != couple:
                self._replan(couple, now)
        self._couples = dict(couples)

    def tick(self, now: datetime, batch: int = 1000) -> Claimed:
        """Top up couples whose plan runs short, then enqueue everything due at ``now``.

        ``batch`` bounds each claim script: Redis serves nobody else while one runs (about
        10 ms per 1,000 events here), and larger batches measured no faster.
        """
        self._top_up(now)
        self._replan_changed(now)
        enqueued, missed = 0, []
        while True:
            claimed = self._store.claim_due(now, batch)
            enqueued += claimed.enqueued
            missed += claimed.missed
            if claimed.enqueued + len(claimed.missed) < batch:
                break
        if missed and self._on_missed is not None:
            self._on_missed(missed)
        return Claimed(enqueued, missed)

    def _top_up(self, now: datetime) -> None:
        threshold = now + self._horizon / 2
        short = cast(
            "list[bytes]",
            self._redis.zrangebyscore(self._planned_key, "-inf", _ms(threshold)),
        )
        known = {c.encode() for c in self._couples}
        planned = set(cast("list[bytes]", self._redis.zrange(self._planned_key, 0, -1)))
        for couple_id in [*short, *(known - planned)]:
            couple = self._couples.get(couple_id.decode())
            if couple is None:
                continue
            score = self._redis.zscore(self._planned_key, couple_id)
            since = datetime.fromtimestamp(score / 1000, UTC) if score is not None else now
            self._plan(couple, max(since, now - self._catch_up), now)

    def _events(self, couple: Couple, start: datetime, end: datetime) -> list[ScheduledEvent]:
        sends = scheduled_events(couple, start, end, self._grace, self._changes(couple.id))
        return sends + later_events(couple, start, end)

    def _replan_changed(self, now: datetime) -> None:
        """Re-plan couples whose occurrences partners changed (SKIP, MOVE): ``FollowUps``
        adds them to a set; each is removed only after its re-plan, so none is lost."""
        waiting = cast("set[bytes]", self._redis.smembers(self._replan_key))
        for raw in waiting:
            couple = self._couples.get(raw.decode())
            if couple is not None:
                self._replan(couple, now)
            self._redis.srem(self._replan_key, raw)

    def _replan(self, couple: Couple, now: datetime) -> None:
        until = now + self._horizon
        events = self._events(couple, now, until)
        self._store.drop_couple(couple.id, keep=[e.event_id for e in events])
        self._store.add(events, now)
        self._redis.zadd(self._planned_key, {couple.id: _ms(until)})

    def _plan(self, couple: Couple, start: datetime, now: datetime) -> None:
        end = now + self._horizon
        if end <= start:
            return
        self._store.add(self._events(couple, start, end), now)
        # GT: two schedulers topping up at once never move the mark backwards.
        self._redis.zadd(self._planned_key, {couple.id: _ms(end)}, gt=True)


def replan_key(namespace: str = "hearth") -> str:
    """The Redis set of couples waiting to be re-planned after their occurrences changed."""
    return f"{namespace}:replan"


def scheduled_event(send: PlannedSend, grace: Grace = Grace()) -> ScheduledEvent:
    """One send as an event for the schedule store, with its deadline from ``grace``."""
    if send.purpose == PROMPT:
        deadline = send.at + grace.prompt
    else:
        deadline = min(send.at + grace.reminder, send.starts)
    return ScheduledEvent(
        event_id=send.event_id,
        couple=send.couple,
        fire_at=send.at,
        deadline=deadline,
        actor=SEND_PROMPT,
        kwargs=message_kwargs(send),
    )


def message_kwargs(send: PlannedSend) -> dict[str, str]:
    """The ``send_prompt`` message's arguments for ``send``: ids only, never the body."""
    return {
        "event_id": send.event_id,
        "occurrence_id": send.occurrence_id,
        "couple": send.couple,
        "ritual": send.ritual,
        "partner": send.partner,
        "purpose": send.purpose,
        "due": send.due.astimezone(UTC).isoformat(),
    }


def _ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)
