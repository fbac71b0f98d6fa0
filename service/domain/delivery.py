"""What the carrier did with a text, and what Hearth does about each failure: one table.

A provider's "accepted" (Twilio's 201) is not "delivered". Twilio reports what happened
next in status callbacks, which may come twice and out of order, so a status only ever
moves forward (``advances``): ``queued`` → ``sending`` → ``sent`` → ``delivered`` |
``undelivered`` | ``failed``, and a final status is never replaced by another.

Failures are classified by the provider's error code (``POLICIES``), whether the code
came back from the send itself (21211, 21614, 21610) or later in a callback (300xx)::

    30003  handset unreachable        resend once, as a new text, 20 minutes later; then stop
    30008  unknown carrier error      resend once, 2 minutes later
    30005  unknown or inactive number ┐
    30006  landline                   │ permanent: the partner's number is marked
    21211  invalid 'To' number        │ unreachable, and nothing more is sent to it until
    21614  not a mobile number        ┘ the couple file gives the partner another number
    30007  carrier filtering          never resent (it would be filtered again): logged for
                                      the operator with the ritual, whose words to change
    21610  the number opted out       mirrored as the partner's STOP
    30034  unregistered US number     the account's registration: logged for the operator
    other                             recorded, not retried

Sources: Twilio's error pages (twilio.com/docs/api/errors/30003 and siblings), summarised
in the research anchors, section (e).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

__all__ = [
    "POLICIES",
    "CodePolicy",
    "DeliveryStatus",
    "Remedy",
    "advances",
    "policy_for",
]


class DeliveryStatus(StrEnum):
    """Twilio's ``MessageStatus`` values for an outbound message."""

    ACCEPTED = "accepted"  # through a messaging service, before a number is chosen
    SCHEDULED = "scheduled"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"  # handed to the carrier
    DELIVERED = "delivered"  # the carrier says the handset has it
    UNDELIVERED = "undelivered"  # the carrier could not deliver it
    FAILED = "failed"  # never left Twilio
    READ = "read"  # some channels only
    CANCELED = "canceled"
    PARTIALLY_DELIVERED = "partially_delivered"

    @property
    def is_failure(self) -> bool:
        return self in (DeliveryStatus.UNDELIVERED, DeliveryStatus.FAILED)

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {
    DeliveryStatus.ACCEPTED: 0,
    DeliveryStatus.SCHEDULED: 0,
    DeliveryStatus.QUEUED: 1,
    DeliveryStatus.SENDING: 2,
    DeliveryStatus.SENT: 3,
    DeliveryStatus.DELIVERED: 4,
    DeliveryStatus.UNDELIVERED: 4,
    DeliveryStatus.FAILED: 4,
    DeliveryStatus.PARTIALLY_DELIVERED: 4,
    DeliveryStatus.CANCELED: 4,
    DeliveryStatus.READ: 5,
}


def advances(old: DeliveryStatus | None, new: DeliveryStatus) -> bool:
    """Whether ``new`` may replace ``old``: only a later stage does (a retried or late
    callback never takes a status back, and the first final status stands, except that a
    ``read`` receipt may follow ``delivered``)."""
    return old is None or new.rank > old.rank


class Remedy(StrEnum):
    """What Hearth does after a failure with a given code."""

    RESEND_ONCE = "resend_once"  # one new text after ``resend_after``; then stop
    UNREACHABLE = "unreachable"  # the number cannot take texts: stop sending to it
    FILTERED = "filtered"  # the carrier filtered the words: never resend, tell the operator
    OPTED_OUT = "opted_out"  # as if the partner had texted STOP
    OPERATOR = "operator"  # the account is at fault: tell the operator, do not resend
    RECORD = "record"  # recorded on the send; nothing else


@dataclass(frozen=True, slots=True)
class CodePolicy:
    code: int | None
    meaning: str
    remedy: Remedy
    resend_after: timedelta | None = None  # RESEND_ONCE only


POLICIES: dict[int, CodePolicy] = {
    p.code: p
    for p in (
        CodePolicy(30003, "the handset is unreachable (switched off or out of coverage)",
                   Remedy.RESEND_ONCE, timedelta(minutes=20)),
        CodePolicy(30008, "an unknown error at the carrier", Remedy.RESEND_ONCE,
                   timedelta(minutes=2)),
        CodePolicy(30005, "the number is unknown or no longer active", Remedy.UNREACHABLE),
        CodePolicy(30006, "the number is a landline or cannot receive texts",
                   Remedy.UNREACHABLE),
        CodePolicy(21211, "the number is not a valid phone number", Remedy.UNREACHABLE),
        CodePolicy(21614, "the number is not a mobile number", Remedy.UNREACHABLE),
        CodePolicy(30007, "the carrier filtered the text as spam; change its words",
                   Remedy.FILTERED),
        CodePolicy(21610, "the number has opted out (STOP)", Remedy.OPTED_OUT),
        CodePolicy(30034, "the sending number is not registered for US A2P 10DLC",
                   Remedy.OPERATOR),
        CodePolicy(30036, "the text waited past its validity period", Remedy.RECORD),
    )
    if p.code is not None
}  # fmt: skip


def policy_for(code: int | None) -> CodePolicy:
    """The policy for a provider error ``code``; an unknown code is recorded, not retried."""
    if code is not None and code in POLICIES:
        return POLICIES[code]
    return CodePolicy(code, "an error Hearth has no rule for", Remedy.RECORD)
