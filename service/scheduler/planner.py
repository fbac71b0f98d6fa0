"""Keeping the schedule filled: each couple's sends planned a horizon ahead, then claimed.

A tick costs what is due plus the couples whose horizon runs short, never a re-plan of
every couple: each couple is planned up to ``planned_until`` (kept in Redis, so a restart or
another scheduler continues where planning stopped), and topped up when that comes within
half a horizon of now. Planning resumes from ``planned_until`` rather than from now, so
sends that fell due while every scheduler was down are still scheduled, and the claim then
sends them late (within their grace) or records them as missed, never silently drops them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, cast

from service.domain.changes import NO_CHANGES, Changes
from service.domain.deadlines import Grace
from service.domain.events import (
    LaterId,
    LaterKind,
    Purpose,
    PurposeKind,
    SendId,
    parse_event_id,
    week_occurrence_id,
)
from service.domain.sends import PlannedSend, find_send, planned_sends
from service.domain.summaries import summary_at, summary_week
from service.domain.wallclock import resolve, zone
from service.inbound import FEED_RENDER, WEEK_ENDED
from service.scheduler.replans import ReplanQueue
from service.scheduler.store import Claimed, ScheduledEvent, ScheduleStore

if TYPE_CHECKING:
    from redis import Redis

    from service.domain.couples import Couple

__all__ = [
    "PROMPTS_QUEUE",
    "SEND_PROMPT",
    "Grace",
    "Scheduler",
    "couple_digest",
    "later_event_message",
    "later_events",
    "message_kwargs",
    "scheduled_event",
    "scheduled_events",
    "send_prompt_kwargs",
]

# The actor and queue the scheduler's messages are for (workers/prompts.py declares them).
# Later events (feed renders, summaries) travel on the same queue: the claim pushes to one.
SEND_PROMPT = "send_prompt"
PROMPTS_QUEUE = "prompts"
FEED_REFRESH_AT = time(3, 0)
# A tick tops up at most this many couples, so one tick stays short when many run short.
TOP_UP_BATCH = 500
# How far back past the catch-up an outage's texts are still recorded missed.
MISS_BACK = timedelta(days=30)


def scheduled_events(
    couple: Couple,
    start: datetime,
    end: datetime,
    grace: Grace = Grace(),
    changes: Changes = NO_CHANGES,
) -> list[ScheduledEvent]:
    """The couple's sends with ``at`` in ``[start, end)``, as events for the schedule store."""
    return [scheduled_event(send, grace) for send in planned_sends(couple, start, end, changes)]


def later_events(
    couple: Couple, start: datetime, end: datetime, grace: Grace = Grace()
) -> list[ScheduledEvent]:
    """Couple-level events with their fire instant in ``[start, end)``:

    - ``feed.render`` every day at 03:00 in the couple's zone, for a couple with calendar
      rituals: it rolls the feed's window forward (``<couple>/feed/<local date>``); past its
      deadline it is run late, never recorded missed (it is not a text);
    - ``week.ended`` on the couple's summary day and time (default Sunday 19:00) in its zone:
      each partner's summary of the week it covers (``summaries.summary_week``), a text like
      any other (``<couple>/_week/<monday>/summary/<partner>``), held past that partner's
      quiet hours in their zone and recorded missed past its grace.
    """
    tz = zone(couple.timezone)
    calendar = any(r.calendar and r.enabled for r in couple.rituals)
    out = []
    day = (start - timedelta(days=1)).astimezone(tz).date()  # a summary may be held a day
    while day <= end.astimezone(tz).date():
        if calendar:
            later = LaterId(couple.id, LaterKind.FEED, day)
            fire = _local(couple, day, FEED_REFRESH_AT)
            kwargs = {"couple": couple.id, "event_id": str(later)}
            out.append(
                ScheduledEvent(
                    str(later), couple.id, fire, fire + timedelta(days=1), FEED_RENDER, kwargs
                )
            )
        monday = summary_week(couple, day)
        if monday is not None:
            out += _summaries(couple, monday, grace)
        day += timedelta(days=1)
    return [e for e in out if start <= e.fire_at < end]


def _summaries(couple: Couple, monday: date, grace: Grace) -> list[ScheduledEvent]:
    out = []
    for partner in couple.partners:
        at = summary_at(couple, partner, monday)
        send = SendId(week_occurrence_id(couple.id, monday), Purpose.summary(), partner.key)
        kwargs = {
            "couple": couple.id,
            "week": monday.isoformat(),
            "partner": partner.key,
            "event_id": str(send),
        }
        deadline = at + grace.summary
        out.append(ScheduledEvent(str(send), couple.id, at, deadline, WEEK_ENDED, kwargs))
    return out


def _local(couple: Couple, day: date, at: time) -> datetime:
    return resolve(datetime.combine(day, at), zone(couple.timezone))


def later_event_message(event_id: str) -> tuple[str, dict[str, str]] | None:
    """The actor and arguments to run a couple-level job that came due past its deadline
    (run late rather than never); None for a text, which is recorded missed instead."""
    try:
        parsed = parse_event_id(event_id)
    except ValueError:
        return None
    if not isinstance(parsed, LaterId):
        return None
    if parsed.kind is LaterKind.FEED:
        return FEED_RENDER, {"couple": parsed.couple, "event_id": event_id}
    # Planned before summaries were per partner: both partners' summaries, each once.
    kwargs = {"couple": parsed.couple, "week": parsed.day.isoformat(), "event_id": event_id}
    return WEEK_ENDED, kwargs


def couple_digest(couple: Couple) -> str:
    """A digest of everything the couple's plan (and feeds) follow from."""
    return hashlib.sha256(couple.model_dump_json().encode()).hexdigest()


class Scheduler:
    """Plans couples into a ``ScheduleStore`` and claims what is due; safe to run many of.

    The plan is tied to the description it came from: ``{ns}:plan-digest`` keeps each
    couple's digest as planned, so a scheduler that starts (knowing nothing) re-plans every
    couple whose file differs from what was planned, and a couple planned by another
    scheduler is not planned again.
    """

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
        self._digest_key = f"{namespace}:plan-digest"
        self._synced_key = f"{namespace}:plan-synced-at"
        self._replans = ReplanQueue(redis, namespace)
        self._changes = changes or (lambda _: NO_CHANGES)
        self._on_missed = on_missed
        self._couples: dict[str, Couple] = {}
        self._digests: dict[str, str] = {}  # of ``_couples``, computed once per version

    @property
    def grace(self) -> Grace:
        return self._grace

    def set_couples(self, couples: Mapping[str, Couple], now: datetime) -> list[str]:
        """Take the current set of couples; returns the ids re-planned.

        Removed couples lose their future events (due ones stay, and the send path records
        them); couples whose description differs from the one their plan came from (or
        that were never planned) are re-planned now, by a diff that loses nothing, from the
        last instant any scheduler found the plans in step with the files (``mark_synced``):
        an edit is not known to be older than that, so texts it adds since are still
        claimed (late, within their grace) or recorded missed, never skipped unseen.
        """
        synced = self._synced_at()
        for couple_id in sorted(set(self._couples) - set(couples)):
            self._store.drop_couple(couple_id, after=now)
            self._redis.zrem(self._planned_key, couple_id)
            self._redis.hdel(self._digest_key, couple_id)
        fresh = {i: c for i, c in couples.items() if self._couples.get(i) is not c}
        ids = list(fresh)
        digests = {i: couple_digest(fresh[i]) for i in ids}
        replanned = []
        for first in range(0, len(ids), 1000):
            chunk = ids[first : first + 1000]
            known = cast("list[bytes | None]", self._redis.hmget(self._digest_key, chunk))
            for couple_id, old in zip(chunk, known, strict=True):
                if old is None or old.decode() != digests[couple_id]:
                    self._replan(fresh[couple_id], now, edited_since=synced)
                    self._redis.hset(self._digest_key, couple_id, digests[couple_id])
                    replanned.append(couple_id)
        # Only now: if a Redis or database error stopped us half-way, the next call finds
        # the same couples fresh again (those already re-planned match their digest).
        self._couples = dict(couples)
        self._digests = {i: digests.get(i) or self._digests[i] for i in couples}
        self.mark_synced(now)
        return replanned

    def digest(self, couple_id: str) -> str:
        """The digest of the couple's description as last taken by ``set_couples``."""
        return self._digests[couple_id]

    def mark_synced(self, now: datetime) -> None:
        """Note that at ``now`` the plans were in step with the files this scheduler read
        (it found no change, or finished taking one)."""
        self._redis.set(self._synced_key, _ms(now))

    def _synced_at(self) -> datetime | None:
        raw = cast("bytes | None", self._redis.get(self._synced_key))
        return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw is not None else None

    def tick(self, now: datetime, batch: int = 1000) -> Claimed:
        """Top up couples whose plan runs short, re-plan those partners changed, enqueue
        everything due at ``now``, and record what came due past its deadline.

        ``batch`` bounds each claim script: Redis serves nobody else while one runs (about
        10 ms per 1,000 events here), and larger batches measured no faster.
        """
        self._top_up(now)
        self._replan_changed(now)
        enqueued = 0
        while True:
            claimed = self._store.claim_due(now, batch)
            enqueued += claimed.enqueued
            if claimed.enqueued + len(claimed.missed) < batch:
                break
        return Claimed(enqueued, self.record_missed())

    def record_missed(self, limit: int = 1000) -> list[str]:
        """Hand the events the claim found past their deadline to ``on_missed``, and forget
        them only once it returned: the claim keeps them in ``{ns}:missed``, so a database
        error or a crash here loses none (handling them twice is harmless)."""
        missed = self._store.missed(limit)
        if missed and self._on_missed is not None:
            self._on_missed(missed)
        if missed:
            self._store.forget_missed(missed)
        return missed

    def next_due(self) -> datetime | None:
        """When the soonest event comes due (None when nothing is scheduled)."""
        return self._store.next_due()

    def _top_up(self, now: datetime) -> None:
        threshold = now + self._horizon / 2
        short = cast(
            "list[tuple[bytes, float]]",
            self._redis.zrangebyscore(
                self._planned_key, "-inf", _ms(threshold), start=0, num=TOP_UP_BATCH,
                withscores=True,
            ),
        )  # fmt: skip
        for raw, score in short:
            couple = self._couples.get(raw.decode())
            if couple is None:
                continue  # another scheduler's couple, or one removed: that one tops it up
            since = datetime.fromtimestamp(score / 1000, UTC)
            self._miss_beyond_catch_up(couple, since, now)
            self._plan(couple, max(since, now - self._catch_up), now)

    def _events(self, couple: Couple, start: datetime, end: datetime) -> list[ScheduledEvent]:
        sends = scheduled_events(couple, start, end, self._grace, self._changes(couple.id))
        return sends + later_events(couple, start, end, self._grace)

    def _replan_changed(self, now: datetime) -> None:
        """Re-plan couples whose occurrences partners changed (SKIP, MOVE), from the reply
        that changed them: ``FollowUps`` queues them (``ReplanQueue``); each is forgotten
        only after its re-plan, and only if no change came meanwhile, so none is lost."""
        for waiting in self._replans.waiting(now):
            couple = self._couples.get(waiting.couple)
            if couple is not None:
                self._replan(couple, now, edited_since=waiting.since)
            self._replans.done(waiting)

    def _replan(
        self, couple: Couple, now: datetime, *, edited_since: datetime | None = None
    ) -> None:
        """Plan the couple anew by a diff that loses nothing.

        From where its plan had reached (``planned_until``, so sends that fell due during
        downtime are still claimed or recorded), or from ``edited_since`` if earlier (texts
        an edit added since then), up to ``now + horizon``. Pending events
        stay unless the new plan contradicts them: due ones stay (the claim enqueues them
        next and the send path sends or records them with a reason), snoozes and fires
        stay while their occurrence stands. Only future planned texts that the new
        description no longer names leave the schedule.
        """
        score = self._redis.zscore(self._planned_key, couple.id)
        since = datetime.fromtimestamp(score / 1000, UTC) if score is not None else now
        start = min(since, now, edited_since or now)
        self._miss_beyond_catch_up(couple, start, now)
        start = max(start, now - self._catch_up)
        until = now + self._horizon
        events = self._events(couple, start, until)
        keep = {e.event_id for e in events}
        changes = self._changes(couple.id)
        for event_id, fire_at in self._store.pending(couple.id):
            if event_id in keep:
                continue
            if fire_at <= now or self._still_stands(couple, event_id, changes):
                keep.add(event_id)
        self._store.drop_couple(couple.id, keep=sorted(keep))
        self._store.add(events, now)
        # Not GT: the plan now reaches exactly ``until``; a top-up extends it from there.
        self._redis.zadd(self._planned_key, {couple.id: _ms(until)})

    def _miss_beyond_catch_up(self, couple: Couple, since: datetime, now: datetime) -> None:
        """After an outage longer than the catch-up, the texts that fell due before it
        reaches back are not planned (they could only be missed), but still recorded missed:
        nothing is lost without a record. At most ``MISS_BACK`` of them, for cost."""
        end = now - self._catch_up
        start = max(since, end - MISS_BACK)
        if start >= end:
            return
        texts = [
            e.event_id
            for e in self._events(couple, start, end)
            if isinstance(parse_event_id(e.event_id), SendId)
        ]
        if texts:
            self._store.miss(texts, now)

    @staticmethod
    def _still_stands(couple: Couple, event_id: str, changes: Changes) -> bool:
        """Whether a pending event the plan does not list still has a reason to fire: a
        snooze or fire whose occurrence stands, a summary (every couple gets one), or a
        reveal (both answered; the send path reads the answers and judges the rest)."""
        try:
            parsed = parse_event_id(event_id)
        except ValueError:
            return False
        if isinstance(parsed, SendId) and parsed.purpose.kind is PurposeKind.REVEAL:
            return True
        if isinstance(parsed, SendId) and parsed.purpose.is_extra:
            return find_send(couple, parsed, changes) is not None
        return isinstance(parsed, SendId) and parsed.is_summary

    def _plan(self, couple: Couple, start: datetime, now: datetime) -> None:
        end = now + self._horizon
        if end <= start:
            return
        self._store.add(self._events(couple, start, end), now)
        # GT: two schedulers topping up at once never move the mark backwards.
        self._redis.zadd(self._planned_key, {couple.id: _ms(end)}, gt=True)


def scheduled_event(send: PlannedSend, grace: Grace = Grace()) -> ScheduledEvent:
    """One send as an event for the schedule store, with its deadline by its purpose."""
    return ScheduledEvent(
        event_id=send.event_id,
        couple=send.couple,
        fire_at=send.at,
        deadline=send.deadline(grace),
        actor=SEND_PROMPT,
        kwargs=message_kwargs(send),
    )


def message_kwargs(send: PlannedSend) -> dict[str, str]:
    """The ``send_prompt`` message's arguments for ``send``: ids only, never the body."""
    return send_prompt_kwargs(send.id, send.due)


def send_prompt_kwargs(send: SendId, due: datetime) -> dict[str, str]:
    """The ``send_prompt`` message's arguments for the text ``send``, due at ``due``: the
    one spelling of the message, for the planner and for the reconciler's re-queue."""
    return {
        "event_id": str(send),
        "occurrence_id": send.occurrence_id,
        "couple": send.couple,
        "ritual": send.ritual,
        "partner": send.partner,
        "purpose": str(send.purpose),
        "due": due.astimezone(UTC).isoformat(),
    }


def _ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)
