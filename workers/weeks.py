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


_wiring = _Wiring()


def use(summaries: WeeklySummaries) -> None:
    _wiring.summaries = summaries


def week_ended(couple: str, week: str, **_: object) -> None:
    summaries = _wiring.summaries
    if summaries is None:
        raise RuntimeError("call workers.weeks.use(summaries) first")
    summaries.send(couple, date.fromisoformat(week))


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
    return actor
