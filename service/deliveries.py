"""Delivery receipts and the remedy for each failure: what happens after the provider said yes.

``POST /sms/status?event=<event id>`` (the web app) hands each signed status callback to
``Receipts.record``:

    receipt ─ record on its send (PromptLog.record_delivery: settles a pending or unknown
              │                   send as sent; the status only moves forward)
              └─ a failure, newly recorded ─ remedy by its code (service/domain/delivery.py)
                   resend once   plan the resend (a pending, unclaimed row) and queue it
                                 with a delay; the reconciler re-queues it if that is lost
                   unreachable   mark the partner's number: no more texts to it
                   opted out     mirror the partner's STOP
                   filtered, operator, record: logged with the ritual, nothing resent

A send's own synchronous failure (Twilio answering 400 with 21211) takes the same remedies
through ``apply_remedy`` (``service/sending.py``). Numbers and bodies never reach the logs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

from service.domain.delivery import CodePolicy, DeliveryStatus, Remedy, policy_for
from service.domain.errors import HearthError
from service.domain.events import EventIdInvalid, SendId, parse_event_id
from service.inbound import enqueue
from service.scheduler.planner import PROMPTS_QUEUE, SEND_PROMPT, send_prompt_kwargs
from service.storage import Prompt

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime

    from dramatiq import Broker

    from service.storage import DeliveryUpdate, PartnerStates, PromptLog, PromptRecord

__all__ = ["Receipt", "ReceiptInvalid", "Receipts", "apply_remedy"]

log = logging.getLogger("hearth.deliveries")

_SID = re.compile(r"[SM]M[0-9a-fA-F]{32}")


class ReceiptInvalid(HearthError):
    """A signed status callback Hearth cannot use; the message names the field."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """One status callback: which send, which message, what happened to it."""

    event_id: str
    message_sid: str
    status: DeliveryStatus
    code: int | None
    to: str  # the recipient's number: marks an unreachable number; never logged

    @classmethod
    def from_form(cls, event_id: str, form: Mapping[str, str]) -> Receipt:
        """The receipt in Twilio's callback form for the send ``event_id`` (from its URL)."""
        try:
            parse_event_id(event_id)
        except EventIdInvalid as e:
            raise ReceiptInvalid(f"the URL's event: {e}") from None
        sid = form.get("MessageSid") or form.get("SmsSid") or ""
        if not _SID.fullmatch(sid):
            raise ReceiptInvalid("MessageSid must be SM or MM and 32 hex digits")
        said = form.get("MessageStatus") or form.get("SmsStatus") or ""
        try:
            status = DeliveryStatus(said)
        except ValueError:
            raise ReceiptInvalid(f"MessageStatus {said!r} is not a Twilio message status") from None
        raw_code = form.get("ErrorCode", "").strip()
        if raw_code and not raw_code.isdigit():
            raise ReceiptInvalid(f"ErrorCode {raw_code!r} is not a number")
        return cls(event_id, sid, status, int(raw_code) if raw_code else None, form.get("To", ""))


class Receipts:
    """Records receipts and applies the remedy for a failure, once per send and status."""

    def __init__(self, prompts: PromptLog, partners: PartnerStates, broker: Broker | None) -> None:
        self._prompts = prompts
        self._partners = partners
        self._broker = broker

    def record(self, receipt: Receipt, now: datetime) -> DeliveryUpdate | None:
        """Record ``receipt``; None when no send has its event id (nothing is stored)."""
        update = self._prompts.record_delivery(
            receipt.event_id, receipt.message_sid, receipt.status, receipt.code, now
        )
        if update is None:
            log.warning("receipt for %s: no such send", receipt.event_id)
            return None
        if update.settled:
            log.warning("%s: recorded sent from its receipt (the sender had not)", receipt.event_id)
        if update.advanced and receipt.status.is_failure:
            policy = policy_for(receipt.code)
            record = update.record
            apply_remedy(policy, record.event_id, record.couple, record.partner, record.ritual,
                         receipt.to, self._partners, now)  # fmt: skip
            if policy.remedy is Remedy.RESEND_ONCE:
                self._resend(record, policy, now)
        return update

    def _resend(self, record: PromptRecord, policy: CodePolicy, now: datetime) -> None:
        """Plan the one resend of ``record``'s text, unless it is one or has no resend."""
        first = _send_id(record.event_id)
        if first is None or first.purpose.resend or first.is_summary:
            log.warning("%s: not resent (%s)", record.event_id, policy.meaning)
            return
        again = SendId(first.occurrence_id, first.purpose.again(), first.partner)
        at = now + (policy.resend_after or timedelta(0))
        prompt = Prompt(str(again), record.occurrence_id, record.couple, record.ritual,
                        record.partner, str(again.purpose), record.due_at)  # fmt: skip
        if not self._prompts.plan_resend(prompt, at, now):
            return
        log.warning("%s: %s; sent again at %s", record.event_id, policy.meaning,
                    f"{at.astimezone(UTC):%H:%M} UTC")  # fmt: skip
        if self._broker is None:
            return
        delay_ms = max(0, round((at - now).total_seconds() * 1000))
        try:
            enqueue(self._broker, PROMPTS_QUEUE, SEND_PROMPT,
                    send_prompt_kwargs(again, record.due_at), delay_ms=delay_ms)  # fmt: skip
        except RedisError as e:
            # Planned in the database: the reconciler queues it once its time has passed.
            log.warning("%s: resend planned but not queued (%s)", record.event_id, e)


def apply_remedy(
    policy: CodePolicy,
    event_id: str,
    couple: str,
    partner: str,
    ritual: str,
    number: str,
    partners: PartnerStates,
    now: datetime,
) -> None:
    """Act on a failed text by its code's policy (all but the resend, which needs the
    send's plan): mark an unreachable number, mirror an opt-out, tell the operator."""
    remedy, code = policy.remedy, policy.code
    if remedy is Remedy.UNREACHABLE and code is not None and couple and partner and number:
        partners.set_unreachable(couple, partner, number, code, now)
        log.warning("%s: %s (error %s); no more texts to %s of %s until their number changes",
                    event_id, policy.meaning, code, partner, couple)  # fmt: skip
    elif remedy is Remedy.OPTED_OUT and couple and partner:
        partners.set_opted_out(couple, partner, True, now)
    elif remedy in (Remedy.FILTERED, Remedy.OPERATOR):
        log.warning("%s: %s (error %s): ritual %s of %s; not sent again",
                    event_id, policy.meaning, code, ritual or "-", couple)  # fmt: skip
    elif remedy is Remedy.RECORD:
        log.info("%s: %s (error %s)", event_id, policy.meaning, code)


def _send_id(event_id: str) -> SendId | None:
    try:
        found = parse_event_id(event_id)
    except EventIdInvalid:
        return None
    return found if isinstance(found, SendId) else None
