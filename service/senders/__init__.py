"""Where texts go: one small ``Sender`` interface, a console/outbox sender and (next) Twilio."""

from service.senders.base import (
    AmbiguousDeliveryError,
    DeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Sender,
    SentBefore,
)
from service.senders.console import ConsoleSender

__all__ = [
    "AmbiguousDeliveryError",
    "ConsoleSender",
    "DeliveryError",
    "Lookup",
    "Outgoing",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Sender",
    "SentBefore",
]
