"""The ``reply.received`` actor: the webhook stored a reply; handle it (once, whatever happens).

Declared by ``declare(broker)`` like ``send_prompt``; ``workers.main`` wires the handler.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import dramatiq

from service.inbound import REPLIES_QUEUE, REPLY_RECEIVED
from workers.retries import transient

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

    from service.replying import ReplyHandler

__all__ = ["declare", "use"]


@dataclass
class _Wiring:
    handler: ReplyHandler | None = None


_wiring = _Wiring()


def use(handler: ReplyHandler) -> None:
    """Give the actor its handler (the worker's start-up, or a test)."""
    _wiring.handler = handler


def reply_received(message_sid: str) -> None:
    handler = _wiring.handler
    if handler is None:
        raise RuntimeError("call workers.replies.use(handler) first")
    handler.handle(message_sid)


def declare(
    broker: Broker, *, min_backoff_ms: int = 5_000, max_backoff_ms: int = 600_000
) -> Actor[..., None]:
    """Declare ``reply.received`` on ``broker`` and return it."""
    actor: Actor[..., None] = dramatiq.actor(
        actor_name=REPLY_RECEIVED,
        queue_name=REPLIES_QUEUE,
        broker=broker,
        retry_when=transient,
        min_backoff=min_backoff_ms,
        max_backoff=max_backoff_ms,
        time_limit=60_000,
    )(reply_received)
    return actor
