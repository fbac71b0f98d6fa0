"""When an occurrence counts as done (streaks and scores build on it in ``progress.py``).

The rule is the ritual's ``completion`` (BRIEF.md): rituals for both are done when both
partners have answered; each-partner rituals count per partner; either-partner ones (date
night) with one answer; optional ones count when answered and are never asked for again.
"""

from __future__ import annotations

from collections.abc import Collection

from service.domain.kinds import Completion

__all__ = ["is_complete"]


def is_complete(
    completion: Completion, done_by: Collection[str], partners: Collection[str], partner: str
) -> bool:
    """Whether the occurrence is done, for ``partner`` where completion counts per partner."""
    if completion is Completion.BOTH:
        return all(p in done_by for p in partners)
    if completion is Completion.EACH:
        return partner in done_by
    return bool(done_by)
