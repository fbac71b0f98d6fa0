"""``week.ended``: each partner's weekly summary text, sent once like any prompt.

The summary of the week starting ``monday`` goes out the next Monday at 09:00 in the
couple's zone (a later event in the schedule). It is claimed in the prompt log under
``<couple>/_week/<monday>/summary/<partner>`` (``_week`` cannot be a ritual id), so a
redelivered message sends nothing twice; opted-out and paused partners get none.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.domain.completions import is_complete
from service.domain.kinds import Completion
from service.domain.occurrences import occurrences
from service.domain.summaries import RitualWeek, summary_text, week_bounds
from service.senders import Outgoing
from service.sending import Outcome, deliver
from service.storage import Prompt

if TYPE_CHECKING:
    from datetime import date

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Partner
    from service.domain.occurrences import Occurrence
    from service.senders import Sender
    from service.sending import CoupleSource
    from service.storage import AnswerLog, OccurrenceAnswers, PartnerStates, PromptLog

__all__ = ["WEEK", "WeeklySummaries", "week_occurrence_id"]

WEEK = "_week"


def week_occurrence_id(couple: str, monday: date) -> str:
    return f"{couple}/{WEEK}/{monday:%Y%m%d}"


class WeeklySummaries:
    def __init__(
        self,
        couples: CoupleSource,
        answers: AnswerLog,
        prompts: PromptLog,
        partners: PartnerStates,
        sender: Sender,
        clock: Clock,
    ) -> None:
        self._couples = couples
        self._answers = answers
        self._prompts = prompts
        self._partners = partners
        self._sender = sender
        self._clock = clock

    def texts(self, couple: Couple, monday: date) -> dict[str, str]:
        """Each partner's summary of the week starting ``monday``, by partner key."""
        start, end = week_bounds(couple.timezone, monday)
        found = occurrences(couple, start, end, self._answers.changes(couple.id))
        states = self._answers.of([o.id for o in found])
        return {
            p.key: summary_text(p.name, couple.other(p).name, self._weeks(couple, p, found, states))
            for p in couple.partners
        }

    def send(self, couple_id: str, monday: date) -> dict[str, Outcome]:
        """Send the week's summaries; ``RetryableDeliveryError`` propagates for a retry."""
        couple = self._couples.get(couple_id)
        if couple is None:
            return {}
        texts = self.texts(couple, monday)
        occurrence_id = week_occurrence_id(couple.id, monday)
        out = {}
        for partner in couple.partners:
            out[partner.key] = self._send_one(couple, partner, occurrence_id, texts[partner.key])
        return out

    def _send_one(self, couple: Couple, partner: Partner, occ_id: str, text: str) -> Outcome:
        now = self._clock.now()
        event_id = f"{occ_id}/summary/{partner.key}"
        prompt = Prompt(event_id, occ_id, couple.id, WEEK, partner.key, "summary", now)
        if not self._prompts.claim(prompt, now):
            return Outcome.DONE_BEFORE
        state = self._partners.get(couple.id, partner.key)
        if state.opted_out or state.paused_at(now):
            self._prompts.mark_missed(event_id, "opted out or paused", now)
            return Outcome.MISSED
        outgoing = Outgoing(event_id, occ_id, couple.id, WEEK, partner.key, partner.phone, text)
        result = deliver(outgoing, self._sender, self._prompts, self._partners, self._clock, now)
        return result.outcome

    @staticmethod
    def _weeks(
        couple: Couple,
        partner: Partner,
        found: list[Occurrence],
        states: dict[str, OccurrenceAnswers],
    ) -> list[RitualWeek]:
        keys = [p.key for p in couple.partners]
        out = []
        for ritual in couple.rituals:
            mine = [o for o in found if o.ritual == ritual.id and o.partner in (None, partner.key)]
            counted = [o for o in mine if partner.key not in states[o.id].skipped_by]
            done = sum(
                1
                for o in counted
                if is_complete(ritual.completion, states[o.id].done_by, keys, partner.key)
            )
            optional = ritual.completion is Completion.OPTIONAL
            out.append(RitualWeek(ritual.name, len(counted), done, optional))
        return out
