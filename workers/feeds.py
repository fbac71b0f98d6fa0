"""The ``feed.render`` actor: re-render a couple's calendar feeds after a change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dramatiq

from service.inbound import FEED_RENDER, REPLIES_QUEUE
from workers.retries import transient

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

    from service.feeds.publisher import FeedPublisher

__all__ = ["declare", "use"]


@dataclass
class _Wiring:
    publisher: FeedPublisher | None = None


_wiring = _Wiring()


def use(publisher: FeedPublisher) -> None:
    _wiring.publisher = publisher


def render_feed(couple: str, **_: object) -> None:
    # Extra kwargs are tolerated: the scheduler's daily refresh sends its event id along.
    publisher = _wiring.publisher
    if publisher is None:
        raise RuntimeError("call workers.feeds.use(publisher) first")
    publisher.publish(couple)


def declare(
    broker: Broker, *, min_backoff_ms: int = 5_000, max_backoff_ms: int = 600_000
) -> Actor[..., None]:
    actor: Actor[..., None] = dramatiq.actor(
        actor_name=FEED_RENDER,
        queue_name=REPLIES_QUEUE,
        broker=broker,
        retry_when=transient,
        min_backoff=min_backoff_ms,
        max_backoff=max_backoff_ms,
        time_limit=120_000,
    )(render_feed)
    return actor
