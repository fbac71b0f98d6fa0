"""``DashboardPages.render(token)``: the one call the web route makes for ``/c/<token>``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from service.dashboard.history import read_history
from service.dashboard.page import render_page
from service.dashboard.view import build_dashboard

if TYPE_CHECKING:
    from service.dashboard.tokens import DashboardLinks
    from service.domain.clock import Clock
    from service.domain.couples import Couple
    from service.feeds.publisher import FeedPublisher
    from service.storage import AnswerLog, PartnerStates, PromptLog

__all__ = ["DashboardPages"]


class CoupleSource(Protocol):
    def get(self, couple_id: str) -> Couple | None: ...


class DashboardPages:
    def __init__(
        self,
        links: DashboardLinks,
        couples: CoupleSource,
        answers: AnswerLog,
        prompts: PromptLog,
        partners: PartnerStates,
        feeds: FeedPublisher,
        clock: Clock,
    ) -> None:
        self._links = links
        self._couples = couples
        self._answers = answers
        self._prompts = prompts
        self._partners = partners
        self._feeds = feeds
        self._clock = clock

    def render(self, token: str) -> str | None:
        """The HTML page ``token`` opens, or None for every token that opens nothing
        (malformed, unknown, rotated, or its couple or partner gone from the config)."""
        found = self._links.find(token)
        if found is None:
            return None
        couple = self._couples.get(found.couple)
        if couple is None:
            return None
        try:
            viewer = couple.partner(found.partner)
        except KeyError:
            return None
        now = self._clock.now()
        history = read_history(couple, viewer, now, self._answers, self._prompts, self._partners)
        feed = next((u for u in self._feeds.urls(couple.id) if u.partner == viewer.key), None)
        return render_page(build_dashboard(couple, viewer, now, history, feed))
