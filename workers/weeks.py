"""The ``week.ended`` actor: each partner's summary of the week that just ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

import dramatiq

from service.inbound import WEEK_ENDED
from service.scheduler.planner import PROMPTS_QUEUE
from workers.retries import transient

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

    from service.summaries import WeeklySummaries

__all__ = ["declare", "use"]


@dataclass
class _Wiring:
    summaries: WeeklySummaries | None = None
    actor: Actor[..., None] | None = None


_wiring = _Wiring()


def use(summaries: WeeklySummaries) -> None:
    _wiring.summaries = summaries


def week_ended(couple: str, week: str, partner: str | None = None, **_: object) -> None:
    """One partner's summary (both, for events planned before summaries were per partner);
    one held by quiet hours, or held by another worker, comes back later as a new message."""
    summaries, actor = _wiring.summaries, _wiring.actor
    if summaries is None or actor is None:
        raise RuntimeError("call workers.weeks.declare(broker) and use(summaries) first")
    results = summaries.send(couple, date.fromisoformat(week), partner)
    for key, result in results.items():
        if result.retry_at is not None:
            wait = result.retry_at - summaries.clock.now()
            actor.send_with_options(
                kwargs={"couple": couple, "week": week, "partner": key},
                delay=max(0, int(wait.total_seconds() * 1000)),
            )


def declare(
    broker: Broker, *, min_backoff_ms: int = 15_000, max_backoff_ms: int = 3_600_000
) -> Actor[..., None]:
    actor: Actor[..., None] = dramatiq.actor(
        actor_name=WEEK_ENDED,
        queue_name=PROMPTS_QUEUE,
        broker=broker,
        retry_when=transient,
        min_backoff=min_backoff_ms,
        max_backoff=max_backoff_ms,
        time_limit=120_000,
    )(week_ended)
    _wiring.actor = actor
    return actor
