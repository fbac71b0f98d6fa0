"""How late a text may still go out: one policy per purpose, for the claim and the send alike.

The scheduler's claim records an event missed once its deadline has passed, and the send
path checks the same deadline when a worker finally handles the message (it may have waited
in the queue, in retries or in a quiet-hours hold): a text handled past its deadline is
recorded missed, never sent.

    prompt, snooze, fire   at + grace.prompt (a snooze or fire may well come after the start)
    reveal                 at + grace.prompt, ``at`` being the second answer's arrival held
                           past the recipient's quiet hours
    reminder               at + grace.reminder, and never once the occurrence has started
    summary                at + grace.summary
    confirmation           the reply's arrival + grace.confirmation: an answer to the
                           partner's own text (not held for quiet hours, as they just wrote);
                           later than that it would be a stray text, so it is recorded missed
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from service.domain.events import Purpose, PurposeKind

__all__ = ["Grace", "deadline"]


@dataclass(frozen=True, slots=True)
class Grace:
    """How late each purpose may go out after the instant it was planned for (``at``)."""

    prompt: timedelta = timedelta(hours=2)
    reminder: timedelta = timedelta(hours=2)
    summary: timedelta = timedelta(hours=12)
    confirmation: timedelta = timedelta(minutes=30)


def deadline(purpose: Purpose, at: datetime, starts: datetime, grace: Grace) -> datetime:
    """The last instant a text of ``purpose`` planned for ``at`` (quiet hours applied) may go
    out, for an occurrence starting at ``starts``."""
    kind = purpose.kind
    if kind is PurposeKind.REMINDER:
        return min(at + grace.reminder, starts)
    if kind is PurposeKind.SUMMARY:
        return at + grace.summary
    return at + grace.prompt
