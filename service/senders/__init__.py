"""Where texts go: one small ``Sender`` interface, a console/outbox sender and (next) Twilio."""

from service.senders.base import (
    DeliveryError,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
    Sender,
)
from service.senders.console import ConsoleSender

__all__ = [
    "ConsoleSender",
    "DeliveryError",
    "Outgoing",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Sender",
]
