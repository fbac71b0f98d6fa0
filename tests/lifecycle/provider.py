"""An in-memory SMS provider shaped like Twilio, for the lifecycle model.

It keeps every message it accepted (sid, number, body as normalised, the event id its
status callback would carry, when it was created on the model's clock) and answers
``lookup`` as ``TwilioSender.lookup`` reads Twilio's list: a message to the text's number
with its body, created no earlier than ``since`` less the sender's slack; nothing to match
on (no number or body) is ``UNKNOWN``. A rule arms what the next send does (``SendFault``)
and whether the next lookup cannot be read; every call is kept in ``calls``, in order, for
the model to replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from service.domain.clock import ManualClock
from service.domain.segments import normalise_body
from service.senders import (
    AmbiguousDeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    SentBefore,
)
from service.senders.twilio import LOOKUP_SLACK, OPTED_OUT

__all__ = ["Accepted", "FakeProvider", "LookedUp", "Lost", "Refused", "SendFault"]


class SendFault(StrEnum):
    """What the provider does with the next text it is handed."""

    TIMEOUT = "accepted, then the answer timed out"  # stored; AmbiguousDeliveryError
    FAIL_AFTER = "accepted, then 5xx"  # stored; AmbiguousDeliveryError(500)
    FAIL_BEFORE = "5xx before storing"  # not stored; AmbiguousDeliveryError(500)
    INVALID = "refused: 21211"  # PermanentDeliveryError
    NOT_MOBILE = "refused: 21614"
    OPTED_OUT = "refused: 21610"

    @property
    def code(self) -> int | None:
        return {"21211": 21211, "21614": 21614, "21610": OPTED_OUT}.get(self.value[-5:])


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message the provider took: it reaches the partner."""

    sid: str
    text: Outgoing
    body: str  # as stored (normalised)
    created_at: datetime
    fault: SendFault | None  # the send's answer was ambiguous all the same

    @property
    def event_id(self) -> str:
        return self.text.event_id

    @property
    def to(self) -> str:
        return self.text.to


@dataclass(frozen=True, slots=True)
class Refused:
    text: Outgoing
    code: int
    at: datetime


@dataclass(frozen=True, slots=True)
class Lost:
    """A 5xx before the provider stored anything: the sender cannot tell it from a TIMEOUT."""

    text: Outgoing
    at: datetime


@dataclass(frozen=True, slots=True)
class LookedUp:
    text: Outgoing
    since: datetime
    found: SentBefore | Lookup
    at: datetime


Call = Accepted | Refused | Lost | LookedUp


@dataclass
class FakeProvider:
    """Implements ``service.senders.Sender``; faults are one-shot."""

    clock: ManualClock
    messages: list[Accepted] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    next_send: SendFault | None = None
    unreadable_lookups: int = 0  # how many of the next lookups cannot read the list

    def send(self, text: Outgoing, now: datetime) -> str:
        fault, self.next_send = self.next_send, None
        at = self.clock.now()
        if fault is not None and fault.code is not None:
            self.calls.append(Refused(text, fault.code, at))
            raise PermanentDeliveryError(
                f"Twilio answered HTTP 400 (error {fault.code})",
                fault.code,
                opted_out=fault.code == OPTED_OUT,
            )
        if fault is SendFault.FAIL_BEFORE:
            self.calls.append(Lost(text, at))
            raise AmbiguousDeliveryError("Twilio answered HTTP 500 (error None)", 500)
        sid = f"SMf{len(self.messages) + 1:031x}"
        message = Accepted(sid, text, normalise_body(text.body), at, fault)
        self.messages.append(message)
        self.calls.append(message)
        if fault is SendFault.TIMEOUT:
            raise AmbiguousDeliveryError("no answer from Twilio in time (ReadTimeout)")
        if fault is SendFault.FAIL_AFTER:
            raise AmbiguousDeliveryError("Twilio answered HTTP 500 (error None)", 500)
        return sid

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        found = self._lookup(text, since, exclude)
        self.calls.append(LookedUp(text, since, found, self.clock.now()))
        return found

    def _lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str]
    ) -> SentBefore | Lookup:
        if self.unreadable_lookups > 0:
            self.unreadable_lookups -= 1
            return Lookup.UNKNOWN
        if not text.to or not text.matchable:
            return Lookup.UNKNOWN  # as TwilioSender: nothing to match on, never guess
        floor = since - LOOKUP_SLACK
        for message in reversed(self.messages):  # Twilio lists the newest first
            if message.sid in exclude:
                continue  # recorded for another send with the same words, as TwilioSender
            if (
                message.to == text.to
                and text.same_words(message.body)
                and message.created_at >= floor
            ):
                return SentBefore(message.sid)
        return Lookup.NOT_SENT
