"""``POST /sms/inbound``: Twilio's incoming-message webhook, checked, stored, queued, answered;
and ``POST /sms/status``: its delivery receipts, checked and recorded on their sends.

Order matters: the signature is checked first (a forged or unsigned request gets 403 and
changes nothing); the reply is then stored raw, keyed by MessageSid, *before* the webhook
answers, so a reply is never lost; the queued message carries only the sid. If the queue is
unreachable the reply is still stored and the scheduler re-queues it. Bodies and numbers are
never logged. The answer is empty TwiML: confirmations go out from the worker, which knows
what the reply did.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from twilio.request_validator import (  # type: ignore[import-untyped,unused-ignore]
    RequestValidator,
)

from service.deliveries import Receipt, ReceiptInvalid
from service.inbound import enqueue_reply
from service.storage import StorageError
from service.webhooks import INBOUND_PATH, STATUS_PATH

if TYPE_CHECKING:
    from dramatiq import Broker

    from service.deliveries import Receipts
    from service.domain.clock import Clock
    from service.storage import ReplyLog

__all__ = ["sms_router"]

log = logging.getLogger("hearth.web.sms")

# Twilio's message sids: SM (SMS) or MM (MMS) and 32 hex digits.
_SID = re.compile(r"[SM]M[0-9a-fA-F]{32}")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
MAX_BODY_BYTES = 64 * 1024
FORM = "application/x-www-form-urlencoded"

_FIELDS = {
    "MessageSid": "Twilio's id of the message (SM…); the reply's key.",
    "SmsSid": "The same id under its older name.",
    "AccountSid": "The Twilio account (AC…).",
    "From": "The sender's number, E.164.",
    "To": "Hearth's number, E.164.",
    "Body": "The text, up to 1,600 characters.",
    "NumMedia": "How many media items came with it.",
}
# What every signed-form webhook may answer besides its own success and 400.
_SIGNED_FORM_ERRORS: dict[str, Any] = {
    "403": {"description": "Missing or wrong X-Twilio-Signature."},
    "413": {"description": "Body larger than 64 KiB."},
    "415": {"description": "Not form-encoded."},
    "503": {"description": "The log database is unreachable; Twilio will retry."},
}
_OPENAPI: dict[str, Any] = {
    "parameters": [
        {
            "name": "X-Twilio-Signature",
            "in": "header",
            "required": True,
            "description": "HMAC-SHA1 of the public URL and the sorted form, base64 (Twilio).",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        name: {"type": "string", "description": text}
                        for name, text in _FIELDS.items()
                    },
                    "required": ["MessageSid", "From"],
                }
            }
        },
    },
    "responses": {
        "200": {
            "description": "Stored (or already stored): empty TwiML.",
            "content": {"text/xml": {}},
        },
        "400": {"description": "A signed request without a valid MessageSid, or without From."},
        **_SIGNED_FORM_ERRORS,
    },
}


_STATUS_OPENAPI: dict[str, Any] = {
    "parameters": [
        _OPENAPI["parameters"][0],
        {
            "name": "event",
            "in": "query",
            "required": True,
            "description": "The send's event id, set by Hearth in the message's StatusCallback.",
            "schema": {"type": "string"},
        },
    ],
    "requestBody": {
        "required": True,
        "content": {
            FORM: {
                "schema": {
                    "type": "object",
                    "properties": {
                        "MessageSid": {"type": "string", "description": "The message (SM…)."},
                        "MessageStatus": {
                            "type": "string",
                            "description": "queued, sending, sent, delivered, undelivered, "
                            "failed, …",
                        },
                        "ErrorCode": {
                            "type": "string",
                            "description": "Twilio's error code when undelivered or failed.",
                        },
                        "To": {"type": "string", "description": "The recipient, E.164."},
                    },
                    "required": ["MessageSid", "MessageStatus"],
                }
            }
        },
    },
    "responses": {
        "204": {"description": "Recorded (or already recorded, or for no known send)."},
        "400": {"description": "A signed callback with a bad event, sid, status or code."},
        **_SIGNED_FORM_ERRORS,
    },
}


def sms_router(
    replies: ReplyLog,
    broker: Broker,
    clock: Clock,
    auth_token: str,
    public_url: str,
    receipts: Receipts | None = None,
) -> APIRouter:
    router = APIRouter()
    validator = RequestValidator(auth_token)
    base = public_url.rstrip("/")

    async def signed_form(request: Request) -> dict[str, str] | Response:
        """The request's form if Twilio signed it for the public URL; else the answer."""
        raw = await _read(request)
        if isinstance(raw, Response):
            return raw
        params = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        url = base + request.url.path + (f"?{request.url.query}" if request.url.query else "")
        signature = request.headers.get("X-Twilio-Signature", "")
        if not signature or not validator.validate(url, params, signature):
            log.warning("rejected a %s webhook: missing or wrong signature", request.url.path)
            return _error(403, "missing or wrong X-Twilio-Signature")
        return params

    @router.post(
        INBOUND_PATH,
        summary="Twilio incoming-message webhook",
        openapi_extra=_OPENAPI,
        response_class=Response,
    )
    async def sms_inbound(request: Request) -> Response:
        params = await signed_form(request)
        if isinstance(params, Response):
            return params
        sid = params.get("MessageSid") or params.get("SmsSid") or ""
        if not _SID.fullmatch(sid) or not params.get("From"):
            return _error(400, "the form needs MessageSid (SM or MM and 32 hex digits) and From")
        try:
            new = await run_in_threadpool(replies.store, sid, params, clock.now())
        except StorageError as e:
            log.error("inbound %s not stored: %s", sid, e)
            return _error(503, "the reply could not be stored; try again")
        if new:
            try:
                await run_in_threadpool(enqueue_reply, broker, sid)
            except RedisError as e:
                # Stored: the scheduler re-queues replies left unhandled.
                log.warning("inbound %s stored but not queued (%s); it will be re-queued", sid, e)
        log.info("inbound %s %s", sid, "stored" if new else "already stored")
        return Response(EMPTY_TWIML, media_type="text/xml")

    @router.post(
        STATUS_PATH,
        summary="Twilio message status callback (delivery receipts)",
        openapi_extra=_STATUS_OPENAPI,
        response_class=Response,
    )
    async def sms_status(request: Request) -> Response:
        params = await signed_form(request)
        if isinstance(params, Response):
            return params
        if receipts is None:
            return _error(404, "delivery receipts are not taken here")
        try:
            receipt = Receipt.from_form(request.query_params.get("event", ""), params)
        except ReceiptInvalid as e:
            return _error(400, str(e))
        try:
            await run_in_threadpool(receipts.record, receipt, clock.now())
        except StorageError as e:
            log.error("receipt for %s not stored: %s", receipt.event_id, e)
            return _error(503, "the receipt could not be stored; try again")
        return Response(status_code=204)

    return router


async def _read(request: Request) -> bytes | Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM:
        return _error(415, f"send {FORM}")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "the form is larger than 64 KiB")
    return body


def _error(status: int, detail: str) -> Response:
    return JSONResponse({"detail": detail}, status_code=status)
