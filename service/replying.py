"""What happens to a partner's text: parse it, find what it answers, record it, confirm it.

``ReplyHandler.handle(message_sid)`` is what the ``reply.received`` actor calls. It is safe
to call any number of times for one reply:

    stored (webhook) ─ decide ─ settle (one transaction: effects + handled) ─ follow-ups ─ confirm
                                  └─ already settled by another delivery: skip to follow-ups

Follow-ups (re-plan the couple after a skip or move, schedule a snoozed prompt, schedule
the reveal texts once both partners answered a ``reveal: true`` ritual) are idempotent, so
they run on every delivery of a handled reply; the confirmation is sent once and recorded
(``ReplyLog.confirm``).

Reveals go through the schedule like a snooze, not from here: the scheduler's claim
enqueues each ``send_prompt`` once (fired markers), and the send path claims it in the
prompt log, runs the guards every text runs (opted out, paused, unreachable number, quiet
hours, deadline), reads the answers afresh and asks the provider's record after a crash. A
reveal sent from this handler would need its own copy of all that, and a reveal left
pending by a dead handler could not be finished by the reconciler, which re-queues a stale
text as a ``send_prompt`` message.

DONE yesterday (``service/domain/backfill.py``) logs the ritual's previous occurrence when
it started at most 48 hours before the reply arrived, and names its date.

Which text a reply answers (also in ARCHITECTURE.md): the texts Hearth sent to this number
in the last 7 days, newest first; for each ritual only its most recently texted occurrence
counts; of those, the newest that is still open for this partner (not done, skipped or
answered by them; for either-partner rituals, not done by anyone). ``#name`` (ritual id or
kind, hyphens and case ignored) picks that ritual instead; MOVE only looks at calendar
rituals. STOP, START, HELP, PAUSE and RESUME need no target. Inbound bodies and phone
numbers never go to logs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol

from service.domain import confirmations as say
from service.domain.backfill import backfillable, previous_occurrence
from service.domain.completions import is_complete
from service.domain.deadlines import Grace
from service.domain.events import ConfirmationId, Purpose
from service.domain.kinds import KIND_DEFAULTS, Completion
from service.domain.occurrences import Occurrence, find_occurrence, ritual_occurrences
from service.domain.progress import State, streak, streak_phrase
from service.domain.replies import Reply, Verb, WhenNotUnderstood, parse_reply, parse_when
from service.domain.reveals import reveal_sends
from service.domain.segments import words_digest
from service.domain.sends import extra_send
from service.domain.wallclock import resolve
from service.senders import Outgoing
from service.sending import Outcome, deliver, reconcile_taken_over
from service.storage import (
    AnswerEffect,
    ChangeEffect,
    PartnerEffect,
    Prompt,
    PromptState,
    ReplyState,
    Settlement,
)

if TYPE_CHECKING:
    from datetime import datetime

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner, Ritual
    from service.domain.sends import PlannedSend
    from service.senders import Sender
    from service.storage import (
        AnswerLog,
        OccurrenceAnswers,
        PartnerStates,
        PromptLog,
        PromptRecord,
        ReplyLog,
        ReplyRecord,
    )

__all__ = ["CoupleDirectory", "FollowUps", "ReplyHandler", "Target"]

log = logging.getLogger("hearth.replies")

# A confirmation whose send ended unknown keeps its reply open (handled, not confirmed) for
# this long, so each re-handling rechecks it at the provider; after that it stays reported.
UNKNOWN_KEPT_OPEN = timedelta(days=1)
_UNSETTLED = (PromptState.PENDING, PromptState.UNKNOWN)

ANSWERABLE_FOR = timedelta(days=7)
STREAK_LOOKBACK = timedelta(days=400)
STREAK_MAX = 100


class CoupleDirectory(Protocol):
    def get(self, couple_id: str) -> Couple | None: ...
    def by_phone(self, phone: str) -> list[tuple[Couple, Partner]]: ...


class FollowUps(Protocol):
    """What a reply sets in motion outside the database (Redis, the queue)."""

    def occurrence_changed(
        self, event: str, couple_id: str, occurrence_id: str, since: datetime
    ) -> None:
        """``occurrence.skipped`` or ``occurrence.moved``: the scheduler re-plans the couple's
        sends from ``since`` (the reply's arrival) and the calendar feed is republished."""

    def snooze(self, send: PlannedSend) -> None:
        """Send this extra prompt at ``send.at``."""

    def reveal(self, send: PlannedSend) -> None:
        """Send this reveal (the other partner's answer) at ``send.at``, once."""


@dataclass(frozen=True, slots=True)
class Target:
    """The occurrence a reply answers, as seen by the partner who sent it."""

    couple: Couple
    partner: Partner
    ritual: Ritual
    occurrence: Occurrence
    answers: OccurrenceAnswers


@dataclass(frozen=True, slots=True)
class _From:
    """Who a reply is from and what it answers, as the settlement records it."""

    couple: str | None
    partner: str | None
    verb: str
    occurrence_id: str | None = None

    def settle(
        self,
        outcome: str,
        confirmation: str | None,
        *,
        answers: tuple[AnswerEffect, ...] = (),
        changes: tuple[ChangeEffect, ...] = (),
        partners: tuple[PartnerEffect, ...] = (),
    ) -> Settlement:
        return Settlement(
            outcome, confirmation, self.couple, self.partner, self.verb, self.occurrence_id,
            answers, changes, partners,
        )  # fmt: skip


class ReplyHandler:
    def __init__(
        self,
        couples: CoupleDirectory,
        replies: ReplyLog,
        answers: AnswerLog,
        prompts: PromptLog,
        partners: PartnerStates,
        sender: Sender,
        clock: Clock,
        follow_ups: FollowUps,
        *,
        keyword_replies: bool = True,
        grace: Grace = Grace(),
    ) -> None:
        self._couples = couples
        self._replies = replies
        self._answers = answers
        self._prompts = prompts
        self._partners = partners
        self._sender = sender
        self._clock = clock
        self._follow_ups = follow_ups
        # False when the provider answers STOP/START/HELP itself (Twilio's Advanced Opt-Out
        # does by default): a second answer from us would only confuse.
        self._keyword_replies = keyword_replies
        self._grace = grace

    def handle(self, message_sid: str) -> ReplyRecord | None:
        """Handle the stored reply once; ``RetryableDeliveryError`` propagates for a retry."""
        record = self._replies.get(message_sid)
        if record is None:
            log.warning("reply %s: not stored; nothing to do", message_sid)
            return None
        if record.state is ReplyState.RECEIVED:
            now = self._clock.now()
            settlement = self.decide(record, now)
            if self._replies.settle(message_sid, settlement, now):
                log.info(
                    "reply %s from %s/%s: %s", message_sid, settlement.couple or "-",
                    settlement.partner or "-", settlement.outcome,
                )  # fmt: skip
            record = self._replies.get(message_sid) or record
        if record.state is ReplyState.HANDLED:
            self._follow_up(record)
            self._confirm(record)
        return record

    # --- deciding -------------------------------------------------------------------------

    def decide(self, record: ReplyRecord, now: datetime) -> Settlement:
        """What the reply means and does; reads the log, writes nothing."""
        phone = record.raw.get("From", "")
        reply = parse_reply(record.raw.get("Body", ""))
        matches = self._couples.by_phone(phone)
        if not matches:
            return _From(None, None, reply.verb.value).settle("unknown-number", say.UNKNOWN_NUMBER)
        first_couple, first_partner = matches[0]
        who = _From(first_couple.id, first_partner.key, reply.verb.value)
        keyword = self._keyword_replies
        if reply.verb is Verb.STOP:
            effects = tuple(PartnerEffect(c.id, p.key, opted_out=True) for c, p in matches)
            return who.settle("opted-out", say.OPTED_OUT if keyword else None, partners=effects)
        if reply.verb is Verb.START:
            effects = tuple(PartnerEffect(c.id, p.key, opted_out=False) for c, p in matches)
            return who.settle("opted-in", say.OPTED_IN if keyword else None, partners=effects)
        if reply.verb is Verb.HELP:
            return who.settle("help", say.HELP if keyword else None)
        if reply.problem:
            return who.settle("problem", reply.problem)
        if reply.verb is Verb.PAUSE:
            assert reply.span is not None
            until = now + reply.span
            effects = tuple(
                PartnerEffect(c.id, p.key, pause=True, paused_until=until) for c, p in matches
            )
            zone = first_couple.partner_zone(first_partner)
            return who.settle("paused", say.paused(until.astimezone(zone)), partners=effects)
        if reply.verb is Verb.RESUME:
            effects = tuple(PartnerEffect(c.id, p.key, pause=True) for c, p in matches)
            return who.settle("resumed", say.resumed(), partners=effects)
        return self._answer(reply, matches, now, who, record.received_at)

    def _answer(
        self,
        reply: Reply,
        matches: list[tuple[Couple, Partner]],
        now: datetime,
        who: _From,
        received: datetime,
    ) -> Settlement:
        if reply.verb is Verb.DONE and reply.yesterday:
            return self._backfill(reply, matches, now, who, received)
        found = self._target(reply, matches, now)
        if isinstance(found, Settlement):
            return who.settle(found.outcome, found.confirmation)
        t = found
        name = t.ritual.name
        occ_id = t.occurrence.id
        base = _From(t.couple.id, t.partner.key, who.verb, occ_id)
        if reply.verb in (Verb.DONE, Verb.TEXT):
            is_journal = reply.verb is Verb.TEXT
            if is_journal and not t.ritual.journal:
                return base.settle("not-understood", say.HELP)
            action = "journal" if is_journal else "done"
            answer = AnswerEffect(t.couple.id, t.ritual.id, occ_id, t.partner.key, action,
                                  reply.text)  # fmt: skip
            waiting_on, both, run = self._completion(t, now)
            text = (
                say.journal(name, waiting_on, run)
                if is_journal
                else say.done(name, waiting_on, both, run)
            )
            return base.settle(action, text, answers=(answer,))
        if reply.verb is Verb.SKIP:
            return self._skip(t, reply, base)
        if reply.verb is Verb.SNOOZE:
            assert reply.span is not None
            # The follow-up schedules it from the reply's arrival (so a redelivery names the
            # same send), held past quiet hours; after a long outage that moment may be
            # past: it goes now.
            snoozed = extra_send(
                t.couple, t.occurrence, t.partner, Purpose.snooze(received + reply.span)
            )
            at = max(snoozed.at, now)
            zone = t.couple.partner_zone(t.partner)
            return base.settle("snoozed", say.snoozed(name, at.astimezone(zone)))
        if reply.verb is Verb.MOVE:
            return self._move(t, reply, now, base)
        return base.settle("not-understood", say.HELP)  # pragma: no cover - exhaustive

    def _backfill(
        self,
        reply: Reply,
        matches: list[tuple[Couple, Partner]],
        now: datetime,
        who: _From,
        received: datetime,
    ) -> Settlement:
        """DONE yesterday: the previous occurrence of the named ritual, or else of the
        rituals texted to this number lately (newest first), the first still open."""
        rituals = self._backfill_rituals(reply, matches, now)
        if isinstance(rituals, Settlement):
            return who.settle(rituals.outcome, rituals.confirmation)
        found = [
            (c, p, r, occ)
            for c, p, r in rituals
            if (occ := previous_occurrence(c, r, p.key, received)) is not None
        ]
        recent = [f for f in found if backfillable(f[3], received)]
        if not recent:
            if not found:
                return who.settle("nothing-open", say.NOTHING_OPEN)
            _, _, ritual, occ = found[0]
            return who.settle("too-old", say.too_old(ritual.name, occ.start.date()))
        states = self._answers.of([occ.id for *_, occ in recent])
        targets = [Target(c, p, r, occ, states[occ.id]) for c, p, r, occ in recent]
        open_ = [t for t in targets if not _closed(t)]
        if not open_:
            return who.settle("already", say.already(targets[0].ritual.name))
        t = open_[0]
        base = _From(t.couple.id, t.partner.key, who.verb, t.occurrence.id)
        answer = AnswerEffect(t.couple.id, t.ritual.id, t.occurrence.id, t.partner.key, "done",
                              reply.text)  # fmt: skip
        waiting_on, _, _ = self._completion(t, now)
        text = say.backfilled(t.ritual.name, t.occurrence.start.date(), waiting_on)
        return base.settle("done", text, answers=(answer,))

    def _backfill_rituals(
        self, reply: Reply, matches: list[tuple[Couple, Partner]], now: datetime
    ) -> list[tuple[Couple, Partner, Ritual]] | Settlement:
        if reply.ritual is not None:
            wanted = _norm(reply.ritual)
            named = [(c, p, r) for c, p in matches for r in c.rituals if wanted in _names(r)]
            if not named:
                known = [r.id for c, _ in matches for r in c.rituals]
                return Settlement("no-such-ritual", say.no_such_ritual(reply.ritual, known))
            return named
        by_id = {c.id: (c, p) for c, p in matches}
        sent = self._prompts.recent_sent([(c.id, p.key) for c, p in matches], now - ANSWERABLE_FOR)
        out: list[tuple[Couple, Partner, Ritual]] = []
        seen: set[tuple[str, str]] = set()
        for record in sent:
            couple, partner = by_id[record.couple]
            ritual_ids = {r.id for r in couple.rituals}
            if record.ritual not in ritual_ids or (record.couple, record.ritual) in seen:
                continue  # a weekly summary, a ritual removed since, or seen already
            seen.add((record.couple, record.ritual))
            out.append((couple, partner, couple.ritual(record.ritual)))
        return out

    def _skip(self, t: Target, reply: Reply, base: _From) -> Settlement:
        answer = AnswerEffect(t.couple.id, t.ritual.id, t.occurrence.id, t.partner.key,
                              "skipped", reply.text)  # fmt: skip
        zone = t.couple.partner_zone(t.partner)
        text = say.skipped(t.ritual.name, t.occurrence.start.astimezone(zone), t.ritual.calendar)
        if t.ritual.completion is Completion.EACH:
            # Counted per partner: one partner's skip is theirs alone.
            return base.settle("skipped", text, answers=(answer,))
        change = ChangeEffect(t.couple.id, t.ritual.id, t.occurrence.id, t.partner.key,
                              skipped=True)  # fmt: skip
        return base.settle("skipped", text, answers=(answer,), changes=(change,))

    def _move(self, t: Target, reply: Reply, now: datetime, base: _From) -> Settlement:
        if not t.ritual.calendar:
            return base.settle("problem", say.not_movable(t.ritual.name))
        zone = t.occurrence.start.tzinfo
        assert zone is not None
        try:
            wall = parse_when(reply.text, now.astimezone(zone), t.occurrence.start)
        except WhenNotUnderstood as e:
            return base.settle("problem", str(e))
        tz = t.couple.zone_of(t.ritual)
        moved_to = resolve(wall, tz)
        if moved_to <= now:
            return base.settle("problem", "That time has passed. Try MOVE tomorrow 19:30.")
        change = ChangeEffect(t.couple.id, t.ritual.id, t.occurrence.id, t.partner.key,
                              moved_to=moved_to)  # fmt: skip
        text = say.moved(t.ritual.name, moved_to.astimezone(tz))
        return base.settle("moved", text, changes=(change,))

    def _target(
        self, reply: Reply, matches: list[tuple[Couple, Partner]], now: datetime
    ) -> Target | Settlement:
        by_id = {c.id: (c, p) for c, p in matches}
        sent = self._prompts.recent_sent([(c.id, p.key) for c, p in matches], now - ANSWERABLE_FOR)
        rituals_of = {c.id: {r.id for r in c.rituals} for c, _ in matches}
        latest: list[PromptRecord] = []
        seen: set[tuple[str, str, str]] = set()
        for record in sent:
            if record.ritual not in rituals_of[record.couple]:
                continue  # a weekly summary, or a ritual removed since
            key = (record.couple, record.ritual, record.partner)
            if key not in seen:
                seen.add(key)
                latest.append(record)
        if reply.ritual is not None:
            wanted = _norm(reply.ritual)
            rituals = [r for c, _ in matches for r in c.rituals if wanted in _names(r)]
            if not rituals:
                known = [r.id for c, _ in matches for r in c.rituals]
                return Settlement("no-such-ritual", say.no_such_ritual(reply.ritual, known))
            ids = {(r.id) for r in rituals}
            latest = [r for r in latest if r.ritual in ids]
        candidates: list[Target] = []
        states = self._answers.of([r.occurrence_id for r in latest])
        for record in latest:
            couple, partner = by_id[record.couple]
            answers = states[record.occurrence_id]
            occurrence = find_occurrence(couple, record.occurrence_id, answers.changes)
            if occurrence is None and answers.change is not None and answers.change.skipped:
                occurrence = find_occurrence(couple, record.occurrence_id)
            if occurrence is None:
                continue
            ritual = couple.ritual(occurrence.ritual)
            if reply.verb is Verb.MOVE and not ritual.calendar and reply.ritual is None:
                continue
            candidates.append(Target(couple, partner, ritual, occurrence, answers))
        open_ = [t for t in candidates if not _closed(t)]
        if open_:
            return open_[0]
        if candidates and reply.ritual is not None:
            return Settlement("already", say.already(candidates[0].ritual.name))
        return Settlement("nothing-open", say.NOTHING_OPEN)

    def _completion(self, t: Target, now: datetime) -> tuple[str | None, bool, str]:
        """After this partner's answer: whom it waits on, whether both did it, the streak."""
        keys = [p.key for p in t.couple.partners]
        done_by = t.answers.done_by | {t.partner.key}
        rule = t.ritual.completion
        both = rule is Completion.BOTH
        if both and not is_complete(rule, done_by, keys, t.partner.key):
            return t.couple.other(t.partner).name, False, ""
        return None, both, streak_phrase(self._streak(t, now), t.ritual.recurrence)

    def _streak(self, t: Target, now: datetime) -> int:
        occ = t.occurrence
        past = [
            o
            for o in ritual_occurrences(t.couple, t.ritual, now - STREAK_LOOKBACK, now)
            if o.partner == occ.partner and o.id != occ.id
        ][-STREAK_MAX:]
        history = [occ, *reversed(past)]
        states = self._answers.of([o.id for o in history])
        keys = [p.key for p in t.couple.partners]
        marks = []
        for o in history:
            s = states[o.id]
            done_by = s.done_by | {t.partner.key} if o.id == occ.id else s.done_by
            if (s.change is not None and s.change.skipped) or t.partner.key in s.skipped_by:
                marks.append(State.SKIPPED)
            elif is_complete(t.ritual.completion, done_by, keys, t.partner.key):
                marks.append(State.DONE)
            else:
                marks.append(State.MISSED)
        return streak(marks)

    # --- after settling -------------------------------------------------------------------

    def _follow_up(self, record: ReplyRecord) -> None:
        if record.couple is None:
            return
        if record.outcome == "journal" and record.occurrence_id:
            self._reveal(record.couple, record.occurrence_id)
        if record.outcome in ("skipped", "moved") and record.occurrence_id:
            event = f"occurrence.{record.outcome}"
            self._follow_ups.occurrence_changed(
                event, record.couple, record.occurrence_id, record.received_at
            )
        if record.outcome == "snoozed" and record.occurrence_id and record.partner:
            couple = self._couples.get(record.couple)
            occ = find_occurrence(couple, record.occurrence_id) if couple else None
            reply = parse_reply(record.raw.get("Body", ""))
            if couple is None or occ is None or reply.span is None:
                return
            # From the reply's arrival, not from now: a redelivery names the same send.
            at = record.received_at + reply.span
            purpose = Purpose.snooze(at)
            send = extra_send(couple, occ, couple.partner(record.partner), purpose)
            self._follow_ups.snooze(send)

    def _reveal(self, couple_id: str, occurrence_id: str) -> None:
        """Once every partner answered a revealing ritual's occurrence, schedule each one's
        text with the other's answer. Run after every journal answer: whichever of two
        answers is settled last sees both (each reads after its own settlement commits),
        and both name the same sends (due at the later answer), so it is scheduled once."""
        couple = self._couples.get(couple_id)
        occ = find_occurrence(couple, occurrence_id) if couple else None
        if couple is None or occ is None or not couple.ritual(occ.ritual).reveal:
            return
        for send in reveal_sends(couple, occ, self._answers.answers_to(occurrence_id)):
            self._follow_ups.reveal(send)

    def _confirm(self, record: ReplyRecord) -> None:
        """Text the confirmation once: claimed in the prompt log like any send
        (``reply/<sid>``), so a second handler beside a slow first one sends nothing, and a
        handler that died mid-send is reconciled with the provider's record, not repeated.
        It answers the partner's own text, so it is not held for quiet hours; handled later
        than ``Grace.confirmation`` after the reply came, it is recorded missed instead.
        A partner who opted out meanwhile gets nothing: the claim is recorded missed."""
        now = self._clock.now()
        text = record.confirmation
        to = record.raw.get("From", "")
        if not text or not to:
            self._replies.confirm(record.message_sid, None, now)
            return
        event_id = str(ConfirmationId(record.message_sid))
        outgoing = Outgoing(
            event_id=event_id,
            occurrence_id=record.occurrence_id or "",
            couple=record.couple or "",
            ritual="",
            partner=record.partner or "",
            to=to,
            body=text,
            deadline=record.received_at + self._grace.confirmation,
        )
        prompt = Prompt(
            event_id, outgoing.occurrence_id, outgoing.couple, "", outgoing.partner,
            "confirmation", record.received_at, words_digest(event_id, text),
        )  # fmt: skip
        claim = self._prompts.claim(prompt, now)
        if not claim:
            settled = self._prompts.get(event_id)
            if settled is not None and settled.state not in _UNSETTLED:
                self._replies.confirm(record.message_sid, settled.provider_id, now)
            # else another handler is sending it; a dead one is taken over after the lease
            return
        result = None
        if claim.may_have_sent:
            result = reconcile_taken_over(outgoing, self._sender, self._prompts, now)
        late = record.received_at + self._grace.confirmation
        reason = None
        if result is None and self._silenced(record):
            # Claimed first, so that a claim a dead handler left (before the partner opted
            # out) is settled too, not left pending for ever.
            reason = "the partner opted out"
        elif result is None and now > late:
            # An answer is due while the partner is still in the conversation (which is
            # also why it may go out in their quiet hours: they just texted). Hours later,
            # say at night after an outage, it would be a stray text.
            reason = f"too late to answer: the reply came at {record.received_at:%H:%M} UTC"
        if reason is not None:
            self._prompts.mark_missed(event_id, reason, now)
            self._replies.confirm(record.message_sid, None, now)
            return
        if result is None:
            result = deliver(outgoing, self._sender, self._prompts, self._partners,
                             self._clock, now)  # fmt: skip
        if result.outcome is Outcome.UNKNOWN and now < record.received_at + UNKNOWN_KEPT_OPEN:
            # The reply stays unconfirmed, so that handling it again (the reconciler re-queues
            # it) rechecks the confirmation at the provider instead of forgetting it.
            return
        provider_id = result.provider_id if result.outcome is Outcome.SENT else None
        self._replies.confirm(record.message_sid, provider_id, self._clock.now())

    def _silenced(self, record: ReplyRecord) -> bool:
        """An opted-out partner gets nothing but the opt-out confirmation itself."""
        if record.outcome == "opted-out" or record.couple is None or record.partner is None:
            return False
        return self._partners.get(record.couple, record.partner).opted_out


def _closed(t: Target) -> bool:
    a = t.answers
    if a.change is not None and a.change.skipped:
        return True
    if t.partner.key in a.done_by or t.partner.key in a.skipped_by:
        return True
    return t.ritual.completion in (Completion.EITHER, Completion.OPTIONAL) and bool(a.done_by)


def _norm(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _names(ritual: Ritual) -> set[str]:
    return {_norm(ritual.id), _norm(ritual.kind.value), _norm(KIND_DEFAULTS[ritual.kind].name)}
