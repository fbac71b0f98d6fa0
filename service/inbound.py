"""Inbound texts between the webhook and the worker: the queue they travel on, and the token
that signs them.

Twilio signs every webhook with the account's auth token. Without Twilio credentials (console
mode) a development token is made once per data dir, so ``hearth reply`` can sign exactly as
Twilio would and the web app checks it the same way: there is no unsigned path.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dramatiq

from service.local_secret import local_secret

if TYPE_CHECKING:
    from dramatiq import Broker

    from service.settings import Settings

__all__ = [
    "FEED_RENDER",
    "REPLIES_QUEUE",
    "REPLY_RECEIVED",
    "WEEK_ENDED",
    "enqueue",
    "enqueue_feed_render",
    "enqueue_reply",
    "webhook_token",
]

REPLY_RECEIVED = "reply.received"
REPLIES_QUEUE = "replies"
# Feeds render on the replies queue: both are small, event-driven jobs people wait on.
FEED_RENDER = "feed.render"
# Weekly summaries come from the schedule (so on the prompts queue, like every timed event).
WEEK_ENDED = "week.ended"
DEV_TOKEN_FILE = "dev-webhook-token"


def enqueue_reply(broker: Broker, message_sid: str) -> None:
    """Queue the stored reply for the ``reply.received`` actor (by its sid, never its body)."""
    enqueue(broker, REPLIES_QUEUE, REPLY_RECEIVED, {"message_sid": message_sid})


def enqueue(
    broker: Broker,
    queue: str,
    actor: str,
    kwargs: dict[str, str],
    *,
    delay_ms: int | None = None,
) -> None:
    """Queue one message for ``actor`` (declared in another process) by name, to be handled
    no sooner than ``delay_ms`` from now when given."""
    broker.enqueue(
        dramatiq.Message(queue_name=queue, actor_name=actor, args=(), kwargs=kwargs, options={}),
        delay=delay_ms,
    )


def enqueue_feed_render(broker: Broker, couple: str) -> None:
    """Queue a re-render of the couple's feeds (a skip, a move, a config edit)."""
    enqueue(broker, REPLIES_QUEUE, FEED_RENDER, {"couple": couple})


def webhook_token(settings: Settings) -> str:
    """The token webhooks are signed with: Twilio's auth token, or this data dir's dev token."""
    if settings.twilio_auth_token:
        return settings.twilio_auth_token
    return local_secret(settings.data_dir / DEV_TOKEN_FILE, 16)
