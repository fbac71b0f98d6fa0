"""The ``send_prompt`` actor: decode the message, call ``SendPath.handle``, done.

Declared on a broker by ``declare(broker)`` rather than at import, so importing this module
never connects anywhere; ``workers.main`` declares it for the ``dramatiq`` command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import dramatiq

from service.scheduler.planner import PROMPTS_QUEUE, SEND_PROMPT
from service.sending import SendPath, SendRequest
from workers.retries import transient

if TYPE_CHECKING:
    from dramatiq import Actor, Broker

__all__ = ["declare", "use"]

log = logging.getLogger("hearth.workers.prompts")


@dataclass
class _Wiring:
    """What the actor needs at run time, set by the worker's start-up (or a test)."""

    path: SendPath | None = None
    actor: Actor[..., None] | None = None


_wiring = _Wiring()


def use(path: SendPath) -> None:
    """Give the actor its send path (the worker's start-up, or a test)."""
    _wiring.path = path


def send_prompt(
    event_id: str,
    occurrence_id: str,
    couple: str,
    ritual: str,
    partner: str,
    purpose: str,
    due: str,
) -> None:
    path, actor = _wiring.path, _wiring.actor
    if path is None or actor is None:
        raise RuntimeError("call workers.prompts.declare(broker) and use(send_path) first")
    try:
        request = SendRequest.parse(event_id, datetime.fromisoformat(due))
    except ValueError as e:
        # Not a text's id: retrying cannot help, and nothing can be recorded for it.
        log.error("send_prompt: dropped a message with a bad event id: %s", e)
        return
    result = path.handle(request)
    if result.retry_at is not None:
        # Held by quiet hours, or claimed by another worker: come back then, as a new message.
        wait = result.retry_at - path.clock.now()
        delay_ms = max(0, int(wait.total_seconds() * 1000))
        actor.send_with_options(
            kwargs={
                "event_id": event_id,
                "occurrence_id": occurrence_id,
                "couple": couple,
                "ritual": ritual,
                "partner": partner,
                "purpose": purpose,
                "due": due,
            },
            delay=delay_ms,
        )


def declare(
    broker: Broker, *, min_backoff_ms: int = 15_000, max_backoff_ms: int = 3_600_000
) -> Actor[..., None]:
    """Declare ``send_prompt`` on ``broker`` and return it.

    Retries back off exponentially (with jitter, Dramatiq's Retries middleware) from
    ``min_backoff_ms``; Twilio says a 429 is always safe to retry.
    """
    actor: Actor[..., None] = dramatiq.actor(
        actor_name=SEND_PROMPT,
        queue_name=PROMPTS_QUEUE,
        broker=broker,
        retry_when=transient,
        min_backoff=min_backoff_ms,
        max_backoff=max_backoff_ms,
        time_limit=60_000,
    )(send_prompt)
    _wiring.actor = actor
    return actor
