"""Counts over the log for ``/metrics``: read at scrape time, so they hold for every process
(the workers that wrote the rows are not the web process that serves the metrics).

Each is one ``GROUP BY`` over a table; the purpose column is grouped whole and folded into
its kind here (snoozes and fires carry their instant, so there is one group per such text).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from service.domain.errors import HearthError
from service.domain.events import Purpose
from service.storage.engine import make_session_factory, translated
from service.storage.models import PromptRow, ReplyRow

if TYPE_CHECKING:
    from sqlalchemy import Engine

__all__ = ["CONFIRMATION", "Tallies"]

# The purpose a reply's confirmation is logged under (``service/replying.py``).
CONFIRMATION = "confirmation"


class Tallies:
    """How many sends, replies and delivery receipts the log holds, by their labels."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = make_session_factory(engine)

    def sends(self) -> Counter[tuple[str, str]]:
        """Sends by (state, purpose kind): ``("sent", "prompt")``, ``("missed", "summary")``."""
        query = select(PromptRow.state, PromptRow.purpose, func.count()).group_by(
            PromptRow.state, PromptRow.purpose
        )
        out: Counter[tuple[str, str]] = Counter()
        with translated(self.engine), self._sessions() as session:
            for state, purpose, count in session.execute(query):
                out[str(state.value), purpose_kind(purpose)] += count
        return out

    def replies(self) -> Counter[str]:
        """Replies by command (``done``, ``skip``, …; ``none`` before one is parsed)."""
        query = select(ReplyRow.verb, func.count()).group_by(ReplyRow.verb)
        with translated(self.engine), self._sessions() as session:
            return Counter({(verb or "none").lower(): n for verb, n in session.execute(query)})

    def deliveries(self) -> Counter[str]:
        """Sends by the latest delivery status a receipt reported (``delivered``, …)."""
        query = (
            select(PromptRow.delivery_status, func.count())
            .where(PromptRow.delivery_status.is_not(None))
            .group_by(PromptRow.delivery_status)
        )
        with translated(self.engine), self._sessions() as session:
            return Counter({str(status): n for status, n in session.execute(query)})


def purpose_kind(purpose: str) -> str:
    """``reminder-2d`` -> ``reminder``; a confirmation's is ``confirmation``; unknown: ``other``."""
    if purpose == CONFIRMATION:
        return CONFIRMATION
    try:
        return Purpose.parse(purpose).kind.value
    except (HearthError, ValueError):
        return "other"
