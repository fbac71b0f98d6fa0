"""``week.ended``: each partner's weekly summary text, sent once like any prompt.

The summary of the week starting ``monday`` goes out at the couple's summary time (default
that week's Sunday at 19:00 in the couple's zone; ``domain/summaries.py`` says which week a
day covers), each partner's held past their own quiet hours (a send event per partner in the
schedule). Its counts and streaks are ``domain/progress.py``'s, for the couple. It is
claimed in the prompt log under ``<couple>/_week/<monday>/summary/<partner>`` (``_week``
cannot be a ritual id), so a redelivered message sends nothing twice; opted-out and paused
partners get none, and one handled past its deadline (``Grace.summary`` after its time) is
recorded missed.
"""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from service.domain.deadlines import Grace
from service.domain.events import WEEK, Purpose, SendId, week_occurrence_id
from service.domain.kinds import Completion
from service.domain.progress import Cell, Span, State, cells, current_streak, unit
from service.domain.segments import words_digest
from service.domain.summaries import RitualWeek, summary_at, summary_text, week_bounds
from service.senders import Outgoing
from service.sending import (
    CoupleUnreadable,
    Outcome,
    Refreshable,
    SendResult,
    deliver,
    reconcile_taken_over,
)
from service.storage import Prompt, PromptState

if TYPE_CHECKING:
    from datetime import date

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.senders import Sender
    from service.sending import CoupleSource
    from service.storage import AnswerLog, PartnerStates, PromptLog

__all__ = ["WeeklySummaries"]

_INSTANT = timedelta(seconds=1)  # a pause that held one prompt, at its start

# How far back a summary looks for the streak it names.
STREAK_WEEKS = 12


class WeeklySummaries:
    def __init__(
        self,
        couples: CoupleSource,
        answers: AnswerLog,
        prompts: PromptLog,
        partners: PartnerStates,
        sender: Sender,
        clock: Clock,
        grace: Grace = Grace(),
    ) -> None:
        self._couples = couples
        self._answers = answers
        self._prompts = prompts
        self._partners = partners
        self._sender = sender
        self._clock = clock
        self._grace = grace

    @property
    def clock(self) -> Clock:
        """The clock summaries are decided by (the actor times a held one's delay by it)."""
        return self._clock

    def _pauses(self, couple: Couple, found: list[Cell]) -> dict[str, list[Span]]:
        """The pauses that held these occurrences' prompts, by partner. Storage keeps only a
        partner's current pause; the prompt log remembers each prompt a pause held (missed,
        "paused"), so each such occurrence gets a pause spanning its start: neutral, never
        missed."""
        if not found:
            return {}
        held = self._prompts.paused(couple.id, found[0].start)
        out: dict[str, list[Span]] = {}
        for cell in found:
            for partner in held.get(cell.occurrence, ()):
                out.setdefault(partner, []).append(Span(cell.start, cell.start + _INSTANT))
        return out

    def texts(self, couple: Couple, monday: date) -> dict[str, str]:
        """Each partner's summary of the week starting ``monday``, by partner key: the
        couple's week as it stands now (at most at the week's end, so a late summary still
        describes its own week)."""
        week = self.weeks(couple, monday)
        return {p.key: summary_text(p.name, couple.other(p).name, week) for p in couple.partners}

    def weeks(self, couple: Couple, monday: date) -> list[RitualWeek]:
        """Each ritual's week, for the couple, and the streak it has going."""
        _, end = week_bounds(couple.timezone, monday)
        as_of = min(self._clock.now(), end - timedelta(microseconds=1))
        changes = self._answers.changes(couple.id)
        out = []
        for ritual in couple.rituals:
            found = cells(couple, ritual, as_of, weeks=STREAK_WEEKS, changes=changes)
            answers = self._answers.of([c.occurrence for c in found])
            pauses = self._pauses(couple, found)
            found = cells(couple, ritual, as_of, weeks=STREAK_WEEKS, changes=changes,
                          answers=answers, pauses=pauses)  # fmt: skip
            mine = [c for c in found if monday <= c.wall.date() < monday + timedelta(days=7)]
            done = sum(1 for c in mine if c.state is State.DONE)
            optional = ritual.completion is Completion.OPTIONAL
            due = done if optional else done + sum(1 for c in mine if c.state is State.MISSED)
            streak = current_streak(found)
            out.append(
                RitualWeek(ritual.name, due, done, optional, streak, unit(ritual.recurrence))
            )
        return out

    def send(
        self, couple_id: str, monday: date, partner: str | None = None
    ) -> dict[str, SendResult]:
        """Send the week's summary to ``partner`` (both when None), by partner key.

        ``RetryableDeliveryError`` propagates for a retry; a result with ``retry_at`` (held
        by quiet hours, or another worker holds it) asks to be handled again then.
        """
        couple = self._couples.get(couple_id)
        if couple is None and isinstance(self._couples, Refreshable):
            # Gone, or only unreadable for now (a broken file, no good version readable
            # yet): the latter is retried rather than the week's summary dropped.
            self._couples.refresh_now()
            couple = self._couples.get(couple_id)
            if couple is None and self._couples.unreadable(couple_id):
                raise CoupleUnreadable(f"the file of {couple_id} cannot be read yet")
        if couple is None:
            return {}
        texts = self.texts(couple, monday)
        return {
            p.key: self._send_one(couple, p, monday, texts[p.key])
            for p in couple.partners
            if partner is None or p.key == partner
        }

    def _send_one(self, couple: Couple, partner: Partner, monday: date, text: str) -> SendResult:
        now = self._clock.now()
        occ_id = week_occurrence_id(couple.id, monday)
        event_id = str(SendId(occ_id, Purpose.summary(), partner.key))
        at = summary_at(couple, partner, monday)
        deadline = at + self._grace.summary
        # This week's words now; a lookup after an ambiguous failure matches the words
        # that attempt sent (the counts can change by the recheck).
        prompt = Prompt(event_id, occ_id, couple.id, WEEK, partner.key, "summary", at,
                        words_digest(event_id, text))  # fmt: skip
        outgoing = Outgoing(event_id, occ_id, couple.id, WEEK, partner.key, partner.phone, text,
                            deadline)  # fmt: skip
        claim = self._prompts.claim(prompt, now)
        if not claim:
            record = self._prompts.get(event_id)
            if record is not None and record.state is PromptState.PENDING:
                held_since = record.claimed_at or now
                return SendResult(Outcome.BUSY, "another worker holds the claim",
                                  retry_at=self._prompts.takeover_at(held_since))  # fmt: skip
            return SendResult(Outcome.DONE_BEFORE)
        if claim.may_have_sent:
            settled = reconcile_taken_over(outgoing, self._sender, self._prompts, now)
            if settled is not None:
                return settled
        state = self._partners.get(couple.id, partner.key)
        reason = None
        if state.opted_out or state.paused_at(now):
            reason = "opted out or paused"
        elif (mark := self._partners.unreachable(state, partner.phone)) is not None:
            reason = (f"the partner's number cannot take texts (error {mark.code} at "
                      f"{mark.at.astimezone(UTC):%Y-%m-%d %H:%M} UTC)")  # fmt: skip
        elif now > deadline:
            reason = f"past its deadline {deadline:%Y-%m-%d %H:%M %Z}"
        elif partner.quiet_hours is not None:
            release = partner.quiet_hours.release(now, couple.partner_zone(partner))
            if release > deadline:
                reason = "quiet hours last past its deadline"
            elif release > now:
                self._prompts.release(event_id, "quiet hours", now, release)
                return SendResult(Outcome.HELD, "quiet hours", retry_at=release)
        if reason is not None:
            self._prompts.mark_missed(event_id, reason, now)
            return SendResult(Outcome.MISSED, reason)
        return deliver(outgoing, self._sender, self._prompts, self._partners, self._clock, now)
