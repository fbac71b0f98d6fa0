"""The sender interface, and delivery errors split so that retry policy is a type check.

HearthError
└── DeliveryError
    ├── RetryableDeliveryError   rate limited, no connection: nothing went out, try again
    ├── AmbiguousDeliveryError   a read timeout, a 5xx: the text may be out; never resent
    │                            blindly (recorded ``unknown`` until the provider's record
    │                            says what happened)
    └── PermanentDeliveryError   invalid number, opted out: record as failed, never retry

``Sender.lookup`` asks the provider's own record whether a text went out for an event: the
send path asks it before sending again an event whose earlier holder may have sent it.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from service.domain.errors import HearthError
from service.domain.segments import normalise_body, words_digest

__all__ = [
    "AmbiguousDeliveryError",
    "DeliveryError",
    "Lookup",
    "Outgoing",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "Sender",
    "SentBefore",
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
    # The last instant the text is worth arriving (its deadline): the provider may drop it
    # from its queue after that (Twilio's ValidityPeriod). None: no limit.
    deadline: datetime | None = None
    # For a lookup: ``words_digest`` of the words an earlier attempt handed the provider,
    # which may differ from ``body`` now (None: match on ``body``). See ``same_words``.
    sent_digest: str | None = None

    def same_words(self, provider_body: str) -> bool:
        """Whether a message the provider holds with ``provider_body`` has this text's
        words, as an earlier attempt sent them."""
        if self.sent_digest is not None:
            return hmac.compare_digest(words_digest(self.event_id, provider_body), self.sent_digest)
        return bool(self.body) and normalise_body(provider_body) == normalise_body(self.body)

    @property
    def matchable(self) -> bool:
        """Whether a lookup has words to match on (never guess "not sent" without them)."""
        return self.sent_digest is not None or bool(self.body)


class DeliveryError(HearthError):
    """A text could not be handed to the provider; ``code`` is the provider's, if any."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class RetryableDeliveryError(DeliveryError):
    """Worth trying again later (the provider said so, or could not be reached)."""


class AmbiguousDeliveryError(DeliveryError):
    """The request may have reached the provider: the text may be out, or may not."""


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot help; ``opted_out`` when the number has opted out at the carrier."""

    def __init__(self, message: str, code: int | None = None, *, opted_out: bool = False) -> None:
        super().__init__(message, code)
        self.opted_out = opted_out


@dataclass(frozen=True, slots=True)
class SentBefore:
    """The provider's record shows the event's text went out, with this id."""

    provider_id: str


class Lookup(Enum):
    NOT_SENT = "not_sent"  # the provider's record has no text for the event: send it
    UNKNOWN = "unknown"  # the provider cannot be asked (yet): do not send again


class Sender(Protocol):
    """Hands one text to a provider and returns the provider's id for it."""

    def send(self, text: Outgoing, now: datetime) -> str: ...

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        """Whether the provider took ``text`` (its event) since ``since``; messages in
        ``exclude`` (provider ids recorded for other sends, such as a snooze or a resend
        with the same words) are not it."""
        ...
