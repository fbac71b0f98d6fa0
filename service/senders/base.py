"""The sender interface, and delivery errors split so that retry policy is a type check.

HearthError
└── DeliveryError
    ├── RetryableDeliveryError   rate limited, provider 5xx, network: try again later
    └── PermanentDeliveryError   invalid number, opted out: record as failed, never retry
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from service.domain.errors import HearthError

__all__ = [
    "DeliveryError",
    "Outgoing",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Sender",
]


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One text to one partner, with the ids that tie it to its event."""

    event_id: str
    occurrence_id: str
    couple: str
    ritual: str
    partner: str
    to: str  # E.164
    body: str


class DeliveryError(HearthError):
    """A text could not be handed to the provider; ``code`` is the provider's, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableDeliveryError(DeliveryError):
    """Worth trying again later (the provider said so, or could not be reached)."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help; ``opted_out`` when the number has opted out at the carrier."""

    def __init__(self, message: str, code: int | None = None, *, opted_out: bool = False) -> None:
        super().__init__(message, code)
        self.opted_out = opted_out


class Sender(Protocol):
    """Hands one text to a provider and returns the provider's id for it."""

    def send(self, text: Outgoing, now: datetime) -> str: ...
