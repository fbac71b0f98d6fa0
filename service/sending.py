"""What happens when a send event comes due: one function, callable without a broker.

``SendPath.handle`` claims the event in the prompt log (so a duplicated or redelivered
message can never send twice), runs the guards in order — each one small class with one
job, like Dramatiq's middleware — and then sends, recording the outcome:

    claim ─ StillPlanned ─ Answered ─ OptedOut ─ Paused ─ QuietHours ─ send ─ mark_sent/failed
      │          │            │           │          │          │          └─ retryable: raise
      │          └────────────┴───────────┴──────────┴─ missed  └─ held: come back at its end
      └─ already handled, or another worker holds it

A worker that dies after the provider accepted a text but before ``mark_sent`` leaves the
row pending; after the lease another worker may send it again. That window is one HTTP
response long; everything else about a send is decided before the provider is called.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from service.domain.kinds import Completion
from service.domain.occurrences import parse_occurrence_id
from service.domain.sends import PlannedSend, find_send
from service.senders import Outgoing, PermanentDeliveryError, RetryableDeliveryError
from service.storage import OccurrenceAnswers, Prompt, PromptState

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.senders import Sender
    from service.storage import PartnerState, PartnerStates, PromptLog

__all__ = [
    "DEFAULT_GUARDS",
    "Outcome",
    "SendPath",
    "SendRequest",
    "SendResult",
    "deliver",
    "record_missed",
]

log = logging.getLogger("hearth.sending")


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # permanently
    MISSED = "missed"  # a guard said no: not planned any more, opted out, paused
    HELD = "held"  # quiet hours: come back at ``retry_at``
    DONE_BEFORE = "done_before"  # another delivery of the same event already settled it
    BUSY = "busy"  # another worker holds the claim: come back after the lease


@dataclass(frozen=True, slots=True)
class SendRequest:
    """The event as the scheduler enqueued it."""

    event_id: str
    occurrence_id: str
    couple: str
    partner: str
    due: datetime


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    retry_at: datetime | None = None  # HELD and BUSY: when to try again
    provider_id: str | None = None


class CoupleSource(Protocol):
    def get(self, couple_id: str) -> Couple | None: ...


class AnswerSource(Protocol):
    def of(self, occurrence_ids: Iterable[str]) -> dict[str, OccurrenceAnswers]: ...


@dataclass(frozen=True, slots=True)
class Context:
    request: SendRequest
    now: datetime
    couple: Couple | None
    send: PlannedSend | None
    partner_state: PartnerState  # read once per send, for every guard that needs it
    answers: OccurrenceAnswers  # what partners answered (skips, moves, done)


class Guard(Protocol):
    """One reason not to send now; returns None to let the send through."""

    def check(self, ctx: Context) -> SendResult | None: ...


class StillPlanned:
    """The couple's current file still names this send (the ritual may have been edited), and
    no partner skipped or moved its occurrence since it was scheduled."""

    def check(self, ctx: Context) -> SendResult | None:
        if ctx.couple is None:
            return SendResult(Outcome.MISSED, "the couple is no longer configured")
        change = ctx.answers.change
        if ctx.send is None and change is not None and change.skipped:
            return SendResult(Outcome.MISSED, "the occurrence was skipped")
        if ctx.send is None and change is not None:
            return SendResult(Outcome.MISSED, "the occurrence was moved")
        if ctx.send is None:
            return SendResult(Outcome.MISSED, "the couple's rituals no longer include this send")
        return None


class OptedOut:
    """A partner who replied STOP gets nothing until START."""

    def check(self, ctx: Context) -> SendResult | None:
        if ctx.partner_state.opted_out:
            return SendResult(Outcome.MISSED, "the partner opted out")
        return None


class Paused:
    """A partner who replied PAUSE gets nothing until the pause ends."""

    def check(self, ctx: Context) -> SendResult | None:
        state = ctx.partner_state
        if state.paused_at(ctx.now):
            return SendResult(Outcome.MISSED, f"the partner paused until {state.paused_until}")
        return None


class QuietHours:
    """A text arriving in the partner's quiet hours (a late catch-up, a retry) is held."""

    def check(self, ctx: Context) -> SendResult | None:
        assert ctx.couple is not None  # StillPlanned runs first
        partner = _partner(ctx.couple, ctx.request.partner)
        if partner.quiet_hours is None:
            return None
        release = partner.quiet_hours.release(ctx.now, ctx.couple.partner_zone(partner))
        if release > ctx.now:
            return SendResult(Outcome.HELD, "quiet hours", retry_at=release.astimezone(UTC))
        return None


class Answered:
    """Nobody is nagged about what they already did: reminders and snoozed prompts stop once
    the partner answered (done or skipped), or for either-partner and optional rituals once
    anyone did."""

    def check(self, ctx: Context) -> SendResult | None:
        assert ctx.couple is not None  # StillPlanned runs first
        partner = ctx.request.partner
        answers = ctx.answers
        if partner in answers.done_by or partner in answers.skipped_by:
            return SendResult(Outcome.MISSED, "the partner already answered")
        ritual = ctx.couple.ritual(parse_occurrence_id(ctx.request.occurrence_id).ritual)
        if ritual.completion in (Completion.EITHER, Completion.OPTIONAL) and answers.done_by:
            return SendResult(Outcome.MISSED, "already done")
        return None


DEFAULT_GUARDS: tuple[Guard, ...] = (
    StillPlanned(),
    Answered(),
    OptedOut(),
    Paused(),
    QuietHours(),
)


class SendPath:
    """Claims, guards and sends one event; every outcome is recorded in the prompt log."""

    def __init__(
        self,
        couples: CoupleSource,
        prompts: PromptLog,
        partners: PartnerStates,
        sender: Sender,
        clock: Clock,
        guards: Sequence[Guard] = DEFAULT_GUARDS,
        answers: AnswerSource | None = None,
    ) -> None:
        self._couples = couples
        self._prompts = prompts
        self._partners = partners
        self._sender = sender
        self._clock = clock
        self.clock = clock  # the actor times a retry's delay by it
        self._guards = tuple(guards)
        self._answers = answers

    def handle(self, request: SendRequest) -> SendResult:
        """Send ``request`` at most once; ``RetryableDeliveryError`` propagates for a retry."""
        now = self._clock.now()
        couple = self._couples.get(request.couple)
        answers = OccurrenceAnswers()
        if self._answers is not None:
            answers = self._answers.of([request.occurrence_id])[request.occurrence_id]
        send = (
            find_send(couple, request.occurrence_id, request.event_id, answers.changes)
            if couple
            else None
        )
        if not self._prompts.claim(_prompt(request, send), now):
            return self._not_claimed(request, now)
        state = self._partners.get(request.couple, request.partner)
        ctx = Context(request, now, couple, send, state, answers)
        for guard in self._guards:
            verdict = guard.check(ctx)
            if verdict is None:
                continue
            if verdict.outcome is Outcome.HELD:
                self._prompts.release(request.event_id, verdict.detail, now)
            else:
                self._prompts.mark_missed(request.event_id, verdict.detail, now)
            log.info("%s %s: %s", request.event_id, verdict.outcome, verdict.detail)
            return verdict
        # StillPlanned let it through, so both exist.
        assert couple is not None
        assert send is not None
        return self._deliver(request, couple, send, now)

    def _deliver(
        self, request: SendRequest, couple: Couple, send: PlannedSend, now: datetime
    ) -> SendResult:
        partner = _partner(couple, request.partner)
        text = Outgoing(
            event_id=send.event_id,
            occurrence_id=send.occurrence_id,
            couple=send.couple,
            ritual=send.ritual,
            partner=send.partner,
            to=partner.phone,
            body=send.body,
        )
        return deliver(text, self._sender, self._prompts, self._partners, self._clock, now)

    def _not_claimed(self, request: SendRequest, now: datetime) -> SendResult:
        record = self._prompts.get(request.event_id)
        if record is not None and record.state is PromptState.PENDING:
            claimed = record.claimed_at or now
            return SendResult(
                Outcome.BUSY,
                "another worker holds the claim",
                retry_at=claimed + self._prompts.lease,
            )
        state = record.state.value if record else "unknown"
        return SendResult(Outcome.DONE_BEFORE, f"already {state}")


def deliver(
    text: Outgoing,
    sender: Sender,
    prompts: PromptLog,
    partners: PartnerStates,
    clock: Clock,
    now: datetime,
) -> SendResult:
    """Hand a claimed text to the provider and settle its row in the prompt log.

    A retryable error releases the claim and is raised for a retry; a permanent one is
    recorded as failed (and a carrier opt-out mirrored to the partner's state).
    """
    try:
        provider_id = sender.send(text, now)
    except RetryableDeliveryError as e:
        prompts.release(text.event_id, str(e), clock.now())
        log.warning("%s: retryable delivery error %s", text.event_id, e.code)
        raise
    except PermanentDeliveryError as e:
        done = clock.now()
        prompts.mark_failed(text.event_id, str(e), done)
        if e.opted_out:
            # The carrier says this number opted out (Twilio 21610): mirror it, so
            # nothing more is even tried until the partner sends START.
            partners.set_opted_out(text.couple, text.partner, True, done)
        log.warning("%s: failed permanently (code %s)", text.event_id, e.code)
        return SendResult(Outcome.FAILED, str(e))
    prompts.mark_sent(text.event_id, provider_id, clock.now())
    log.info("%s sent", text.event_id)
    return SendResult(Outcome.SENT, provider_id=provider_id)


def record_missed(
    couples: CoupleSource, prompts: PromptLog, event_id: str, reason: str, now: datetime
) -> bool:
    """Record a scheduled event that came due past its grace as missed; False if already settled.

    Event ids are ``<occurrence id>/<purpose>/<partner>``, so the id alone names the send.
    """
    occurrence_id, _, partner = event_id.rpartition("/")
    occurrence_id = occurrence_id.rpartition("/")[0]
    key = parse_occurrence_id(occurrence_id)
    couple = couples.get(key.couple)
    send = find_send(couple, occurrence_id, event_id) if couple else None
    due = send.due if send is not None else now
    request = SendRequest(event_id, occurrence_id, key.couple, partner, due)
    if not prompts.claim(_prompt(request, send), now):
        return False
    return prompts.mark_missed(event_id, reason, now)


def _prompt(request: SendRequest, send: PlannedSend | None) -> Prompt:
    if send is not None:
        return Prompt.from_planned(send)
    # Not in the config any more: still claimed, so that it is recorded as missed once.
    # Event ids are "<occurrence id>/<purpose>/<partner>", occurrence ids "couple/ritual/…".
    purpose = request.event_id.removeprefix(request.occurrence_id + "/").rsplit("/", 1)[0]
    return Prompt(
        event_id=request.event_id,
        occurrence_id=request.occurrence_id,
        couple=request.couple,
        ritual=parse_occurrence_id(request.occurrence_id).ritual,
        partner=request.partner,
        purpose=purpose,
        due_at=request.due,
    )


def _partner(couple: Couple, key: str) -> Partner:
    return couple.partner(key)
