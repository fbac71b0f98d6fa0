"""What happens when a send event comes due: one function, callable without a broker.

``SendPath.handle`` claims the event in the prompt log (so a duplicated or redelivered
message can never send twice), runs the guards in order — each one small class with one
job, like Dramatiq's middleware — and then sends, recording the outcome:

    claim ─ (taken over? ask the provider's record) ─ StillPlanned ─ Answered ─ OptedOut ─
      Paused ─ OnTime ─ QuietHours ─ send ─ mark_sent / failed / unknown
      │          │            │           │          │          │          └─ retryable: raise
      │          └────────────┴───────────┴──────────┴─ missed  └─ held: come back at its end
      └─ already handled, or another worker holds it

No blind second text. A claim taken over from a worker that died past its lease may belong
to a text that went out: the sender's own record (the console outbox; Twilio's message list
from issue [F], ``unknown`` until then) is asked first. A provider answer that may mean
"accepted" (a read timeout, a 5xx) records the send ``unknown``, never retries it. A
provider id whose recording failed is kept and the recording retried, not the send.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from service.deliveries import apply_remedy
from service.domain.deadlines import Grace
from service.domain.delivery import policy_for
from service.domain.events import PurposeKind, SendId, parse_send_id
from service.domain.kinds import Completion
from service.domain.reveals import find_reveal
from service.domain.segments import normalise_body, segments, words_digest
from service.domain.sends import PlannedSend, find_send
from service.senders import (
    AmbiguousDeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SentBefore,
)
from service.storage import OccurrenceAnswers, Prompt, PromptState, StorageError
from service.storage.prompt_log import PAUSED_REASON

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.domain.reveals import Answer
    from service.senders import Sender
    from service.storage import PartnerState, PartnerStates, PromptLog, Unreachable

__all__ = [
    "DEFAULT_GUARDS",
    "CoupleUnreadable",
    "Outcome",
    "SendPath",
    "SendRequest",
    "SendResult",
    "deliver",
    "reconcile_taken_over",
    "record_missed",
]

log = logging.getLogger("hearth.sending")


# A send whose couple's file cannot be read comes back this much later (the reconciler's
# clock: Dramatiq's retry decides the message's own).
UNREADABLE_RETRY = timedelta(minutes=1)
OPTED_OUT = 21610  # the policy for a refusal the sender says is an opt-out
# How far back of a send's claim other sends' messages are left out of its lookup.
OTHERS_LOOKBACK = timedelta(days=2)
# Waits between tries to record a send the provider accepted (the database may be away
# for a moment); the text is never sent again meanwhile.
RECORD_RETRIES_S = (0.2, 0.5, 1.0, 2.0, 4.0)


class Outcome(StrEnum):
    SENT = "sent"
    FAILED = "failed"  # permanently
    UNKNOWN = "unknown"  # the provider may have it: reported, never sent again blindly
    MISSED = "missed"  # a guard said no: not planned any more, opted out, paused
    HELD = "held"  # quiet hours: come back at ``retry_at``
    DONE_BEFORE = "done_before"  # another delivery of the same event already settled it
    BUSY = "busy"  # another worker holds the claim: come back after the lease


@dataclass(frozen=True, slots=True)
class SendRequest:
    """The event as the scheduler enqueued it."""

    id: SendId
    due: datetime

    @classmethod
    def parse(cls, event_id: str, due: datetime) -> SendRequest:
        """From the message's event id (``EventIdInvalid`` when it names no text)."""
        return cls(parse_send_id(event_id), due)

    @property
    def event_id(self) -> str:
        return str(self.id)

    @property
    def occurrence_id(self) -> str:
        return self.id.occurrence_id

    @property
    def couple(self) -> str:
        return self.id.couple

    @property
    def partner(self) -> str:
        return self.id.partner


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    detail: str = ""
    retry_at: datetime | None = None  # HELD and BUSY: when to try again
    provider_id: str | None = None


class CoupleSource(Protocol):
    def get(self, couple_id: str) -> Couple | None: ...


@runtime_checkable
class Refreshable(Protocol):
    """A couple source that can read the config anew on demand (a worker's), and tell a
    couple that is gone from one whose file it cannot read yet."""

    def refresh_now(self) -> None: ...
    def unreadable(self, couple_id: str) -> bool: ...


class CoupleUnreadable(RetryableDeliveryError):
    """The couple's file is broken and no good version of it could be read (the shared
    ones live in Redis): the send waits for one rather than being recorded missed."""


class AnswerSource(Protocol):
    def of(self, occurrence_ids: Iterable[str]) -> dict[str, OccurrenceAnswers]: ...
    def answers_to(self, occurrence_id: str) -> Mapping[str, Answer]: ...


@dataclass(frozen=True, slots=True)
class Context:
    request: SendRequest
    now: datetime
    couple: Couple | None
    send: PlannedSend | None
    partner_state: PartnerState  # read once per send, for every guard that needs it
    answers: OccurrenceAnswers  # what partners answered (skips, moves, done)
    grace: Grace = field(default_factory=Grace)
    unreachable: Unreachable | None = None  # the mark on the partner's current number

    @property
    def deadline(self) -> datetime:
        assert self.send is not None  # StillPlanned runs first
        return self.send.deadline(self.grace)


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


class NumberUnreachable:
    """A number the carrier refused for good (a landline, an unknown number) gets nothing
    more; a new number in the couple file is not marked, so texts resume by themselves."""

    def check(self, ctx: Context) -> SendResult | None:
        mark = ctx.unreachable
        if mark is not None:
            return SendResult(
                Outcome.MISSED,
                f"the partner's number cannot take texts (error {mark.code} at "
                f"{_stamp(mark.at)}); give them another number in the couple file",
            )
        return None


class Paused:
    """A partner who replied PAUSE gets nothing until the pause ends."""

    def check(self, ctx: Context) -> SendResult | None:
        state = ctx.partner_state
        if state.paused_at(ctx.now):
            return SendResult(Outcome.MISSED, f"{PAUSED_REASON} until {state.paused_until}")
        return None


class OnTime:
    """A text handled past its deadline (it waited in the queue, in retries, in a hold) is
    recorded missed, never sent: the same policy the scheduler's claim applies."""

    def check(self, ctx: Context) -> SendResult | None:
        if ctx.now > ctx.deadline:
            return SendResult(Outcome.MISSED, f"past its deadline {_stamp(ctx.deadline)}")
        return None


class QuietHours:
    """A text arriving in the partner's quiet hours (a late catch-up, a retry) is held, or
    recorded missed when the hold would end past its deadline."""

    def check(self, ctx: Context) -> SendResult | None:
        assert ctx.couple is not None  # StillPlanned runs first
        partner = _partner(ctx.couple, ctx.request.partner)
        if partner.quiet_hours is None:
            return None
        release = partner.quiet_hours.release(ctx.now, ctx.couple.partner_zone(partner))
        if release <= ctx.now:
            return None
        if release > ctx.deadline:
            return SendResult(
                Outcome.MISSED, f"quiet hours last past its deadline {_stamp(ctx.deadline)}"
            )
        return SendResult(Outcome.HELD, "quiet hours", retry_at=release.astimezone(UTC))


class Answered:
    """Nobody is nagged about what they already did: reminders and snoozed prompts stop once
    the partner answered (done or skipped), or for either-partner and optional rituals once
    anyone did. A fire (``hearth fire``) is an explicit new send and is not refused, and a
    reveal exists because both answered."""

    def check(self, ctx: Context) -> SendResult | None:
        assert ctx.couple is not None  # StillPlanned runs first
        if ctx.request.id.purpose.kind in (PurposeKind.FIRE, PurposeKind.REVEAL):
            return None
        partner = ctx.request.partner
        answers = ctx.answers
        if partner in answers.done_by or partner in answers.skipped_by:
            return SendResult(Outcome.MISSED, "the partner already answered")
        ritual = ctx.couple.ritual(ctx.request.id.ritual)
        if ritual.completion in (Completion.EITHER, Completion.OPTIONAL) and answers.done_by:
            return SendResult(Outcome.MISSED, "already done")
        return None


DEFAULT_GUARDS: tuple[Guard, ...] = (
    StillPlanned(),
    Answered(),
    OptedOut(),
    NumberUnreachable(),
    Paused(),
    OnTime(),
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
        grace: Grace = Grace(),
        record_retries_s: Sequence[float] = RECORD_RETRIES_S,
    ) -> None:
        self._couples = couples
        self._prompts = prompts
        self._partners = partners
        self._sender = sender
        self._clock = clock
        self._guards = tuple(guards)
        self._answers = answers
        self._grace = grace
        self._record_retries_s = tuple(record_retries_s)
        # Provider ids of texts that went out but could not be recorded yet, by event id:
        # a retry of the message records them instead of sending again.
        self._unrecorded: dict[str, str] = {}

    @property
    def clock(self) -> Clock:
        """The clock the send path decides by (the actor times a retry's delay by it)."""
        return self._clock

    def handle(self, request: SendRequest) -> SendResult:
        """Send ``request`` at most once; ``RetryableDeliveryError`` and ``StorageError``
        propagate for a retry."""
        now = self._clock.now()
        kept = self._unrecorded.get(request.event_id)
        if kept is not None:
            self._prompts.mark_sent(request.event_id, kept, now)
            del self._unrecorded[request.event_id]
            return SendResult(Outcome.SENT, "recorded on a retry", provider_id=kept)
        couple = self._couples.get(request.couple)
        answers = OccurrenceAnswers()
        if self._answers is not None:
            answers = self._answers.of([request.occurrence_id])[request.occurrence_id]
        send = self._find(couple, request, answers)
        if send is None and isinstance(self._couples, Refreshable):
            # The scheduler may have planned this from a file newer than this worker has
            # read yet: "no longer planned" is judged on the freshest version only.
            self._couples.refresh_now()
            couple = self._couples.get(request.couple)
            send = self._find(couple, request, answers)
        claim = self._prompts.claim(_prompt(request, send), now)
        if not claim:
            return self._not_claimed(request, now)
        if couple is None and isinstance(self._couples, Refreshable):
            unreadable = self._unreadable(request, now)
            if unreadable is not None:
                return unreadable
        if claim.may_have_sent:
            settled = self._reconcile(request, couple, send, now)
            if settled is not None:
                return settled
        state = self._partners.get(request.couple, request.partner)
        unreachable = None
        if couple is not None and state.unreachable is not None:
            phone = _partner(couple, request.partner).phone
            unreachable = self._partners.unreachable(state, phone)
        ctx = Context(request, now, couple, send, state, answers, self._grace, unreachable)
        for guard in self._guards:
            verdict = guard.check(ctx)
            if verdict is None:
                continue
            if verdict.outcome is Outcome.HELD:
                self._prompts.release(request.event_id, verdict.detail, now, verdict.retry_at)
            else:
                self._prompts.mark_missed(request.event_id, verdict.detail, now)
            log.info("%s %s: %s", request.event_id, verdict.outcome, verdict.detail)
            return verdict
        # StillPlanned let it through, so both exist.
        assert couple is not None
        assert send is not None
        return self._deliver(request, couple, send, now)

    def _find(
        self, couple: Couple | None, request: SendRequest, answers: OccurrenceAnswers
    ) -> PlannedSend | None:
        """The text as the couple's file (and, for a reveal, both answers) say it now."""
        if couple is None:
            return None
        if request.id.purpose.kind is PurposeKind.REVEAL:
            # Its body is the other partner's answer, read now: a reveal whose answers are
            # gone (or never both there) is no longer planned, and is recorded missed.
            if self._answers is None:
                return None
            found = self._answers.answers_to(request.occurrence_id)
            return find_reveal(couple, request.id, found, answers.changes)
        return find_send(couple, request.id, answers.changes)

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
            deadline=send.deadline(self._grace),
        )
        return deliver(
            text, self._sender, self._prompts, self._partners, self._clock, now,
            record_retries_s=self._record_retries_s, unrecorded=self._unrecorded,
        )  # fmt: skip

    def _unreadable(self, request: SendRequest, now: datetime) -> SendResult | None:
        """While the couple's file cannot be read: raise for a retry, until a prompt's grace
        after the text was due; then record it missed, saying why."""
        assert isinstance(self._couples, Refreshable)
        if not self._couples.unreadable(request.couple):
            return None
        if now > request.due + self._grace.prompt:
            reason = f"the file of {request.couple} could not be read in time"
            self._prompts.mark_missed(request.event_id, reason, now)
            return SendResult(Outcome.MISSED, reason)
        reason = f"the file of {request.couple} cannot be read yet"
        self._prompts.release(request.event_id, reason, now, now + UNREADABLE_RETRY)
        raise CoupleUnreadable(reason)

    def _reconcile(
        self, request: SendRequest, couple: Couple | None, send: PlannedSend | None, now: datetime
    ) -> SendResult | None:
        partner = couple.partner(request.partner) if couple and send else None
        text = Outgoing(
            event_id=request.event_id,
            occurrence_id=request.occurrence_id,
            couple=request.couple,
            ritual=request.id.ritual,
            partner=request.partner,
            to=partner.phone if partner else "",
            body=send.body if send else "",
        )
        return reconcile_taken_over(text, self._sender, self._prompts, now,
                                    planned=send is not None)  # fmt: skip

    def _not_claimed(self, request: SendRequest, now: datetime) -> SendResult:
        record = self._prompts.get(request.event_id)
        if record is not None and record.state is PromptState.PENDING:
            claimed = record.claimed_at or now
            return SendResult(
                Outcome.BUSY,
                "another worker holds the claim",
                retry_at=self._prompts.takeover_at(claimed),
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
    *,
    record_retries_s: Sequence[float] = RECORD_RETRIES_S,
    unrecorded: dict[str, str] | None = None,
) -> SendResult:
    """Hand a claimed text to the provider and settle its row in the prompt log.

    A retryable error releases the claim and is raised for a retry; a permanent one is
    recorded as failed (and a carrier opt-out mirrored to the partner's state); an
    ambiguous one (the provider may have it) is recorded unknown and never retried. Once
    the provider accepted, only the recording is retried: if the database stays away, the
    provider id is kept in ``unrecorded`` for the message's retry, and the claim stays
    held, so a take-over after the lease asks the provider's record before sending.
    """
    try:
        provider_id = sender.send(text, now)
    except AmbiguousDeliveryError as e:
        prompts.mark_unknown(text.event_id, str(e), clock.now())
        log.warning("%s: the provider may have it (code %s); not sent again", text.event_id,
                    e.code)  # fmt: skip
        return SendResult(Outcome.UNKNOWN, str(e))
    except RetryableDeliveryError as e:
        prompts.release(text.event_id, str(e), clock.now())
        log.warning("%s: retryable delivery error %s", text.event_id, e.code)
        raise
    except PermanentDeliveryError as e:
        done = clock.now()
        prompts.mark_failed(text.event_id, str(e), done)
        log.warning("%s: failed permanently (code %s)", text.event_id, e.code)
        # The same remedies as a receipt's (an unreachable number is marked, an opt-out
        # mirrored so nothing more is tried until START), by the code's policy.
        policy = policy_for(e.code)
        if e.opted_out:
            policy = policy_for(OPTED_OUT)
        apply_remedy(policy, text.event_id, text.couple, text.partner, text.ritual, text.to,
                     partners, done)  # fmt: skip
        return SendResult(Outcome.FAILED, str(e))
    _record_sent(prompts, text.event_id, provider_id, clock, record_retries_s, unrecorded,
                 segments(normalise_body(text.body)))  # fmt: skip
    log.info("%s sent", text.event_id)
    return SendResult(Outcome.SENT, provider_id=provider_id)


def _record_sent(
    prompts: PromptLog,
    event_id: str,
    provider_id: str,
    clock: Clock,
    retries_s: Sequence[float],
    unrecorded: dict[str, str] | None,
    count: int | None = None,
) -> None:
    for wait_s in (*retries_s, None):
        try:
            prompts.mark_sent(event_id, provider_id, clock.now(), count)
        except StorageError:
            if wait_s is None:
                if unrecorded is not None:
                    unrecorded[event_id] = provider_id
                log.error("%s: sent, but the database is away; the recording is retried",
                          event_id)  # fmt: skip
                raise
            time.sleep(wait_s)
        else:
            return


def reconcile_taken_over(
    text: Outgoing,
    sender: Sender,
    prompts: PromptLog,
    now: datetime,
    *,
    planned: bool = True,
) -> SendResult | None:
    """A claim was taken over from a holder that may have sent ``text`` before dying, or
    rechecks a send whose outcome was unknown: settle its row from a receipt already tied
    to it or from the provider's own record, or None when neither shows such a text (then
    it may be sent). A text no longer ``planned`` (its ritual edited away) will not be sent
    again whatever the record says, so a record that cannot be read returns None too, and
    the guards record it missed rather than leave it unknown for ever."""
    record = prompts.get(text.event_id)
    if record is not None and record.provider_id:
        # A delivery receipt (or an earlier recording) named the message: it exists.
        prompts.mark_sent(text.event_id, record.provider_id, now)
        return SendResult(
            Outcome.SENT, "sent by an earlier attempt", provider_id=record.provider_id
        )
    since = record.created_at if record is not None else now
    if record is not None and record.words_digest is not None:
        # Matched on the words the earlier attempt sent, which may not be today's.
        text = replace(text, sent_digest=record.words_digest)
    # Other sends to this partner with the same words (a snooze, a resend, a fire repeat
    # the prompt) are not this one: their recorded messages are left out of the match.
    others = prompts.provider_ids(text.couple, text.partner, since - OTHERS_LOOKBACK)
    found = sender.lookup(text, since, others)
    if isinstance(found, SentBefore):
        prompts.mark_sent(text.event_id, found.provider_id, now)
        log.warning("%s: an earlier attempt had sent it; recorded, not sent again", text.event_id)
        return SendResult(Outcome.SENT, "sent by an earlier attempt", provider_id=found.provider_id)
    if found is Lookup.UNKNOWN and planned:
        reason = "an earlier attempt may have sent it, and the provider's record could not say"
        prompts.mark_unknown(text.event_id, reason, now)
        log.warning("%s: outcome unknown (%s)", text.event_id, reason)
        return SendResult(Outcome.UNKNOWN, reason)
    if planned and text.body:
        # Not sent before: what goes out next is today's words, and a later lookup must
        # know them.
        prompts.note_words(text.event_id, words_digest(text.event_id, text.body))
    return None


def record_missed(
    couples: CoupleSource, prompts: PromptLog, send_id: SendId, reason: str, now: datetime
) -> bool:
    """Record a text that came due past its deadline as missed; False if already settled
    (or another worker holds it)."""
    couple = couples.get(send_id.couple)
    send = find_send(couple, send_id) if couple else None
    request = SendRequest(send_id, send.due if send is not None else now)
    if not prompts.claim(_prompt(request, send), now):
        return False
    return prompts.mark_missed(str(send_id), reason, now)


def _prompt(request: SendRequest, send: PlannedSend | None) -> Prompt:
    if send is not None:
        return Prompt.from_planned(send)
    # Not in the config any more: still claimed, so that it is recorded as missed once.
    return Prompt(
        event_id=request.event_id,
        occurrence_id=request.occurrence_id,
        couple=request.couple,
        ritual=request.id.ritual,
        partner=request.partner,
        purpose=str(request.id.purpose),
        due_at=request.due,
    )


def _stamp(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _partner(couple: Couple, key: str) -> Partner:
    return couple.partner(key)
