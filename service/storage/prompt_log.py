"""The prompt log: a send is claimed in the database before it goes out, so it goes out once.

One row per event id (``<occurrence id>/<purpose>/<partner>``), unique in the table. A
worker ``claim``s the event, sends, then settles the row; a redelivered or duplicated message
finds the row and does not send again::

    (no row) ─claim─▶ pending ─mark_sent────▶ sent
      │                 │  ╰───mark_failed──▶ failed      (final states never change)
      │                 │  ╰───mark_missed──▶ missed
      │                 │  ╰───mark_unknown─▶ unknown ─claim (after recheck_after)─▶ pending
      │                 ╰─release─▶ pending, unclaimed ─claim─▶ pending (attempts + 1)
      ╰─plan_resend─▶ pending, unclaimed (a resend waiting for its time)

``unknown`` is the one state a claim leaves again: the provider may have the text, so the
claim (``RECHECK``) obliges the claimer to ask the provider's record before sending. A
status callback (``record_delivery``) settles a pending or unknown send as sent: it is
the provider's word that the text exists.

The lease rule. A pending row whose claim is older than ``lease`` (default 5 minutes) belongs
to a worker that died between claiming and settling, and the next ``claim`` takes it over;
a younger claim is left alone. The lease must be longer than the longest a live worker can
hold a claim (the send actor's time limit, which bounds the provider call), or a slow worker
and its successor would both send. A worker that dies *during* the provider call may have
sent, so ``claim`` says ``TAKEN_OVER``, and the send path asks the provider's own record
before anything is sent again (``service/sending.py``). A retryable failure (a rate limit,
no connection) is ``release``d, so the retry may claim again at once instead of waiting out
the lease.

Race safety comes from the database, not from reading first: a claim is one
``INSERT … ON CONFLICT (event_id) DO NOTHING RETURNING id`` and, when that inserts nothing,
one conditional ``UPDATE`` of a stale pending row; the database's unique key and row locks
decide, on SQLite and PostgreSQL alike. Time is always an argument (aware; stored in UTC):
this module never reads the clock.

No message body and no phone number is stored, only a digest of the words each attempt
handed the provider (``words_digest``: an unknown send is looked up by the words it went
out with, which may not be the words it would have now). Error texts are stored with
phone numbers masked, since providers quote the number they refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Connection, Engine, Row, func, or_, select, update
from sqlalchemy.sql.dml import Insert

from service.domain.delivery import DeliveryStatus
from service.domain.segments import words_digest
from service.domain.sends import PlannedSend
from service.storage.engine import insert, make_session_factory, translated, writing
from service.storage.models import PromptRow, PromptState

__all__ = [
    "DEFAULT_LEASE",
    "PAUSED_REASON",
    "Claim",
    "DeliveryUpdate",
    "Prompt",
    "PromptLog",
    "PromptRecord",
]

DEFAULT_LEASE = timedelta(minutes=5)
# An unknown send is looked up at the provider no sooner than this after the failure, so
# that a message the provider took is in its list (and its first callback may have come).
DEFAULT_RECHECK_AFTER = timedelta(minutes=1)
# A claim exactly as old as the lease is still its worker's; one this much older is not.
# Whole milliseconds, as Dramatiq counts a retry's delay.
PAST_THE_LEASE = timedelta(milliseconds=1)
ERROR_MAX_CHARS = 2000
# How the send path's pause guard begins its reason: the dashboard reads paused occurrences
# back by it (``PromptLog.paused``).
PAUSED_REASON = "the partner paused"
# +15551234567, +44 20 7946 0958, (555) 123-4567 spelled as a bare run of digits, …
_PHONE_NUMBER = re.compile(r"\+\d[\d\s().-]{5,}\d|(?<!\d)\d{7,15}(?!\d)")


class Claim(Enum):
    """What ``claim`` took. Truthy when the caller may go on to send."""

    NEW = "new"  # first claim of this event
    RECLAIMED = "reclaimed"  # released after a retryable error: nothing went out
    TAKEN_OVER = "taken_over"  # from a holder past its lease, who may have sent it
    RECHECK = "recheck"  # an unknown send: the provider may have it; ask before sending
    NOT_CLAIMED = "not_claimed"  # settled, or held by another worker within the lease

    def __bool__(self) -> bool:
        return self is not Claim.NOT_CLAIMED

    @property
    def may_have_sent(self) -> bool:
        """Whether an earlier attempt may have sent the text: ask the provider first."""
        return self is Claim.TAKEN_OVER or self is Claim.RECHECK


@dataclass(frozen=True, slots=True)
class Prompt:
    """What identifies one send, without its body or its recipient's number."""

    event_id: str
    occurrence_id: str
    couple: str
    ritual: str
    partner: str  # the partner's key
    purpose: str  # "prompt", "reminder-2d", …
    due_at: datetime  # aware; when the schedule says
    words_digest: str | None = None  # of the words a claim is about to send (not the words)

    def __post_init__(self) -> None:
        _require_aware(self.due_at, "due_at")

    @classmethod
    def from_planned(cls, send: PlannedSend) -> Prompt:
        """The log's view of a planned send: its identity, due time and the digest of its
        words, not the words."""
        return cls(
            event_id=send.event_id,
            occurrence_id=send.occurrence_id,
            couple=send.couple,
            ritual=send.ritual,
            partner=send.partner,
            purpose=str(send.purpose),
            due_at=send.due.astimezone(UTC),
            words_digest=words_digest(send.event_id, send.body),
        )


@dataclass(frozen=True, slots=True)
class PromptRecord:
    """One row of the log as it stands; every datetime aware UTC."""

    event_id: str
    occurrence_id: str
    couple: str
    ritual: str
    partner: str
    purpose: str
    state: PromptState
    due_at: datetime
    claimed_at: datetime | None  # None: released, free to claim at once
    attempts: int  # claims taken so far
    retry_at: datetime | None  # a released send's next expected try
    sent_at: datetime | None
    provider_id: str | None
    error: str | None  # why it failed, was missed or released last; phone numbers masked
    created_at: datetime
    updated_at: datetime
    delivery_status: DeliveryStatus | None = None  # what the carrier said last
    delivery_code: int | None = None  # the provider's error code with it
    delivery_at: datetime | None = None
    segments: int | None = None
    words_digest: str | None = None  # of the words the last attempt handed the provider


@dataclass(frozen=True, slots=True)
class DeliveryUpdate:
    """What a status callback changed on its send."""

    record: PromptRecord  # the row after the update
    settled: bool  # it was pending or unknown, and is now sent (the callback proves it)
    advanced: bool  # the delivery status moved forward (False: a late or repeated callback)


class PromptLog:
    """The prompt log on ``engine``: claims and outcomes of sends, race-safe across processes."""

    def __init__(
        self,
        engine: Engine,
        *,
        lease: timedelta = DEFAULT_LEASE,
        recheck_after: timedelta = DEFAULT_RECHECK_AFTER,
    ) -> None:
        if lease <= timedelta(0):
            raise ValueError(f"lease must be positive, not {lease}")
        self.engine = engine
        self.lease = lease
        self.recheck_after = recheck_after
        self._sessions = make_session_factory(engine)

    def claim(self, prompt: Prompt, now: datetime) -> Claim:
        """Claim ``prompt`` for sending at ``now``; truthy only for the one caller that may send.

        ``NEW`` for a new event, ``RECLAIMED`` for a pending one whose claim was released,
        ``TAKEN_OVER`` for one whose claim is older than the lease (its holder died, maybe
        after the provider call), ``RECHECK`` for an unknown one last looked at longer than
        ``recheck_after`` ago (the caller asks the provider before sending). ``NOT_CLAIMED``
        when it is settled, or claimed by another worker within the lease: then, if ``get``
        shows it still pending, retry after the lease rather than drop the message.
        """
        now = _require_aware(now, "now")
        with writing(self.engine) as conn:
            # RETURNING yields the new row's id, or nothing when the event id already exists.
            if conn.execute(self._insert_pending(conn, prompt, now)).first() is not None:
                return Claim.NEW
            # A released claim sent nothing: the digest becomes the words about to go out.
            # A taken-over or rechecked one may have sent: its digest stays, for the lookup.
            words = {"words_digest": prompt.words_digest} if prompt.words_digest else {}
            for outcome, free, values in (
                (Claim.RECLAIMED, (PromptRow.state == PromptState.PENDING)
                 & PromptRow.claimed_at.is_(None), words),
                (Claim.TAKEN_OVER, (PromptRow.state == PromptState.PENDING)
                 & (PromptRow.claimed_at < now - self.lease), {}),
                (Claim.RECHECK, (PromptRow.state == PromptState.UNKNOWN)
                 & (PromptRow.updated_at < now - self.recheck_after), {}),
            ):  # fmt: skip
                taken = conn.execute(
                    update(PromptRow)
                    .where(PromptRow.event_id == prompt.event_id, free)
                    .values(
                        state=PromptState.PENDING,
                        claimed_at=now,
                        attempts=PromptRow.attempts + 1,
                        updated_at=now,
                        **values,
                    )
                )
                if taken.rowcount == 1:
                    return outcome
            return Claim.NOT_CLAIMED

    def note_words(self, event_id: str, digest: str) -> None:
        """Record ``digest`` as the words the held claim of ``event_id`` is about to send
        (after a lookup found no earlier attempt's text, the words may be new)."""
        with writing(self.engine) as conn:
            conn.execute(
                update(PromptRow)
                .where(PromptRow.event_id == event_id, PromptRow.state == PromptState.PENDING)
                .values(words_digest=digest)
            )

    def takeover_at(self, claimed_at: datetime) -> datetime:
        """The first instant a claim taken at ``claimed_at`` may be taken over: when a send
        answered busy tries again (not at the lease's very end, which is still the holder's
        and would answer busy again, at once)."""
        return claimed_at + self.lease + PAST_THE_LEASE

    def mark_sent(
        self, event_id: str, provider_id: str | None, now: datetime, segments: int | None = None
    ) -> bool:
        """Record that the provider accepted the pending send; False if it was not pending."""
        values: dict[str, Any] = {"segments": segments} if segments is not None else {}
        return self._settle(
            event_id, now, state=PromptState.SENT, sent_at=now, provider_id=provider_id, **values
        )

    def plan_resend(self, prompt: Prompt, retry_at: datetime, now: datetime) -> bool:
        """Record a resend waiting for ``retry_at``: pending and unclaimed, so the first claim
        takes it, and the reconciler queues it again if its message is lost. False if it
        exists already (a repeated callback plans nothing twice)."""
        now = _require_aware(now, "now")
        with writing(self.engine) as conn:
            stmt = self._insert_pending(conn, prompt, now, claimed=False, retry_at=retry_at)
            return conn.execute(stmt).first() is not None

    def record_delivery(
        self,
        event_id: str,
        message_sid: str,
        status: DeliveryStatus,
        code: int | None,
        now: datetime,
    ) -> DeliveryUpdate | None:
        """Record a status callback for ``message_sid`` on its send; None if no such send.

        A pending or unknown send is settled as sent with that sid. The delivery status only
        moves forward (callbacks are retried and reordered); a callback for another message
        than the one recorded for the send changes nothing.
        """
        now = _require_aware(now, "now")
        earlier = [s for s in DeliveryStatus if s.rank < status.rank]
        with writing(self.engine) as conn:
            settled = conn.execute(
                update(PromptRow)
                .where(
                    PromptRow.event_id == event_id,
                    PromptRow.state.in_([PromptState.PENDING, PromptState.UNKNOWN]),
                    or_(PromptRow.provider_id.is_(None), PromptRow.provider_id == message_sid),
                )
                .values(
                    state=PromptState.SENT,
                    provider_id=message_sid,
                    sent_at=now,
                    claimed_at=None,
                    updated_at=now,
                )
            ).rowcount
            advanced = conn.execute(
                update(PromptRow)
                .where(
                    PromptRow.event_id == event_id,
                    PromptRow.provider_id == message_sid,
                    or_(
                        PromptRow.delivery_status.is_(None),
                        PromptRow.delivery_status.in_([s.value for s in earlier]),
                    ),
                )
                .values(
                    delivery_status=status.value,
                    delivery_code=code,
                    delivery_at=now,
                    updated_at=now,
                )
            ).rowcount
            row = conn.execute(select(PromptRow).where(PromptRow.event_id == event_id)).first()
        if row is None:
            return None
        return DeliveryUpdate(_record(row), settled == 1, advanced == 1)

    def provider_ids(self, couple: str, partner: str, since: datetime) -> frozenset[str]:
        """Provider ids recorded for the partner's sends created since ``since``: messages
        a lookup must not take for another send with the same words."""
        query = select(PromptRow.provider_id).where(
            PromptRow.couple == couple,
            PromptRow.partner == partner,
            PromptRow.provider_id.is_not(None),
            PromptRow.created_at >= _require_aware(since, "since"),
        )
        with translated(self.engine), self._sessions() as session:
            return frozenset(str(p) for p in session.scalars(query))

    def recent(self, couple: str, partner: str | None = None, limit: int = 5) -> list[PromptRecord]:
        """The couple's (or one partner's) latest sends by due time, newest first."""
        query = select(PromptRow).where(PromptRow.couple == couple)
        if partner is not None:
            query = query.where(PromptRow.partner == partner)
        query = query.order_by(PromptRow.due_at.desc(), PromptRow.id.desc()).limit(limit)
        with translated(self.engine), self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]

    def paused(self, couple: str, since: datetime) -> dict[str, frozenset[str]]:
        """Occurrences since ``since`` whose prompt was not sent because its partner had
        paused: the partners, by occurrence id (the pause's history; ``partners`` keeps only
        the current one)."""
        query = select(PromptRow.occurrence_id, PromptRow.partner).where(
            PromptRow.couple == couple,
            PromptRow.purpose == "prompt",
            PromptRow.state == PromptState.MISSED,
            PromptRow.due_at >= _require_aware(since, "since"),
            PromptRow.error.startswith(PAUSED_REASON, autoescape=True),
        )
        out: dict[str, set[str]] = {}
        with translated(self.engine), self._sessions() as session:
            for occurrence_id, partner in session.execute(query):
                out.setdefault(occurrence_id, set()).add(partner)
        return {k: frozenset(v) for k, v in out.items()}

    def revealed_to(self, couple: str, partner: str) -> frozenset[str]:
        """Occurrences whose other partner's answer was texted to ``partner`` (a reveal
        sent): what their dashboard may show."""
        query = select(PromptRow.occurrence_id).where(
            PromptRow.couple == couple,
            PromptRow.partner == partner,
            PromptRow.purpose.in_(["reveal", "reveal~resend"]),
            PromptRow.state == PromptState.SENT,
        )
        with translated(self.engine), self._sessions() as session:
            return frozenset(session.scalars(query))

    def unknown(self, now: datetime, since: datetime, limit: int = 500) -> list[PromptRecord]:
        """Unknown sends due since ``since`` and last looked at ``recheck_after`` ago: the
        reconciler queues them, and their claim asks the provider before anything is sent."""
        cutoff = _require_aware(now, "now") - self.recheck_after
        query = (
            select(PromptRow)
            .where(
                PromptRow.state == PromptState.UNKNOWN,
                PromptRow.updated_at < cutoff,
                PromptRow.due_at >= _require_aware(since, "since"),
            )
            .order_by(PromptRow.id)
            .limit(limit)
        )
        with translated(self.engine), self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]

    def mark_failed(self, event_id: str, error: str, now: datetime) -> bool:
        """Record a permanent failure of the pending send; False if it was not pending."""
        return self._settle(event_id, now, state=PromptState.FAILED, error=_mask(error))

    def mark_missed(self, event_id: str, reason: str, now: datetime) -> bool:
        """Record why the pending send will not go out (too late, paused); False if not pending."""
        return self._settle(event_id, now, state=PromptState.MISSED, error=_mask(reason))

    def mark_unknown(self, event_id: str, reason: str, now: datetime) -> bool:
        """Record that the provider may have taken the pending send and Hearth cannot tell:
        it is never sent again blindly; False if it was not pending."""
        return self._settle(event_id, now, state=PromptState.UNKNOWN, error=_mask(reason))

    def stale(self, now: datetime, limit: int = 500) -> list[PromptRecord]:
        """Pending rows nobody is working on: claimed longer ago than the lease, or released
        longer ago than the lease (a retry that never came). The reconciler's work list."""
        cutoff = _require_aware(now, "now") - self.lease
        query = (
            select(PromptRow)
            .where(
                PromptRow.state == PromptState.PENDING,
                or_(
                    PromptRow.claimed_at < cutoff,
                    PromptRow.claimed_at.is_(None)
                    & (func.coalesce(PromptRow.retry_at, PromptRow.updated_at) < cutoff),
                ),
            )
            .order_by(PromptRow.id)
            .limit(limit)
        )
        with translated(self.engine), self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]

    def release(
        self, event_id: str, error: str, now: datetime, retry_at: datetime | None = None
    ) -> bool:
        """Give up the claim after a retryable failure or for a hold, so the retry may claim
        again at once; ``retry_at`` says when it is expected (a quiet-hours hold's end).

        The row stays pending with ``error`` kept; False if it was not pending.
        """
        return self._settle(
            event_id, now, claimed_at=None, error=_mask(error), retry_at=retry_at or now
        )

    def get(self, event_id: str) -> PromptRecord | None:
        """The row for ``event_id``, or None if it was never claimed."""
        with translated(self.engine), self._sessions() as session:
            row = session.scalars(
                select(PromptRow).where(PromptRow.event_id == event_id)
            ).one_or_none()
            return None if row is None else _record(row)

    def recent_sent(
        self, recipients: list[tuple[str, str]], since: datetime, limit: int = 200
    ) -> list[PromptRecord]:
        """Texts sent to any of ``recipients`` (couple, partner key) since ``since``, newest
        first: what a reply from those partners may be answering."""
        if not recipients:
            return []
        query = (
            select(PromptRow)
            .where(
                or_(*((PromptRow.couple == c) & (PromptRow.partner == p) for c, p in recipients)),
                PromptRow.state == PromptState.SENT,
                PromptRow.sent_at >= _require_aware(since, "since"),
            )
            .order_by(PromptRow.sent_at.desc(), PromptRow.id.desc())
            .limit(limit)
        )
        with translated(self.engine), self._sessions() as session:
            return [_record(row) for row in session.scalars(query)]

    def counts(self, *, couple: str | None = None) -> dict[PromptState, int]:
        """How many rows are in each state (every state present, zeros included)."""
        query = select(PromptRow.state, func.count()).group_by(PromptRow.state)
        if couple is not None:
            query = query.where(PromptRow.couple == couple)
        found: dict[PromptState, int] = dict.fromkeys(PromptState, 0)
        with translated(self.engine), self._sessions() as session:
            for state, count in session.execute(query):
                found[state] = count
        return found

    # --- helpers --------------------------------------------------------------------------

    def _settle(self, event_id: str, now: datetime, **values: Any) -> bool:
        """Update the row if it is still pending; transitions out of a final state never happen."""
        now = _require_aware(now, "now")
        with writing(self.engine) as conn:
            result = conn.execute(
                update(PromptRow)
                .where(PromptRow.event_id == event_id, PromptRow.state == PromptState.PENDING)
                .values(updated_at=now, **values)
            )
            return result.rowcount == 1

    @staticmethod
    def _insert_pending(
        conn: Connection,
        prompt: Prompt,
        now: datetime,
        *,
        claimed: bool = True,
        retry_at: datetime | None = None,
    ) -> Insert:
        values = {
            "event_id": prompt.event_id,
            "occurrence_id": prompt.occurrence_id,
            "couple": prompt.couple,
            "ritual": prompt.ritual,
            "partner": prompt.partner,
            "purpose": prompt.purpose,
            "state": PromptState.PENDING,
            "due_at": prompt.due_at,
            "claimed_at": now if claimed else None,
            "attempts": 1 if claimed else 0,
            "retry_at": retry_at,
            "words_digest": prompt.words_digest,
            "created_at": now,
            "updated_at": now,
        }
        stmt = insert(conn, PromptRow).values(values)
        return stmt.on_conflict_do_nothing(index_elements=[PromptRow.event_id]).returning(
            PromptRow.id
        )


def _record(row: PromptRow | Row[Any]) -> PromptRecord:
    return PromptRecord(
        event_id=row.event_id,
        occurrence_id=row.occurrence_id,
        couple=row.couple,
        ritual=row.ritual,
        partner=row.partner,
        purpose=row.purpose,
        state=row.state,
        due_at=row.due_at,
        claimed_at=row.claimed_at,
        attempts=row.attempts,
        retry_at=row.retry_at,
        sent_at=row.sent_at,
        provider_id=row.provider_id,
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
        delivery_status=DeliveryStatus(row.delivery_status) if row.delivery_status else None,
        delivery_code=row.delivery_code,
        delivery_at=row.delivery_at,
        segments=row.segments,
        words_digest=row.words_digest,
    )


def _require_aware(value: datetime, name: str) -> datetime:
    if value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {value!r}")
    return value.astimezone(UTC)


def _mask(text: str) -> str:
    """The text with phone numbers masked, cut to ``ERROR_MAX_CHARS``."""
    return _PHONE_NUMBER.sub("<number>", text)[:ERROR_MAX_CHARS]
