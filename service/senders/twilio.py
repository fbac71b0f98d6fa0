"""The Twilio sender: one text becomes one ``messages.create`` call on Twilio's REST API.

Each create asks for delivery receipts at ``<HEARTH_PUBLIC_URL>/sms/status?event=<event
id>`` (``StatusCallback``) and lets Twilio drop the text once its deadline has passed
(``ValidityPeriod``, 1 to 36,000 s). ``lookup`` reads Twilio's message list to tell whether
a text whose create ended ambiguously went out (``service/sending.py`` asks before any
second attempt).

Library errors become delivery errors here, at the boundary (``delivery_error``):

    HTTP 429                                RetryableDeliveryError
    HTTP 5xx, read timeout                  AmbiguousDeliveryError (Twilio may have it)
    error 21610 (recipient opted out)       PermanentDeliveryError(opted_out=True)
    any other 4xx (21211 invalid number)    PermanentDeliveryError
    no connection, connect timeout          RetryableDeliveryError

An error's message never holds a phone number or a body: Twilio quotes the number in some
messages ("The 'To' number +15005550001 is not a valid phone number"), so numbers are masked
(``+150********``), and the library's exception is not chained, since a logged traceback
would print it. Bodies are normalised to plain ASCII punctuation before sending, because a
single curly quote turns the whole text from GSM-7 into UCS-2 and halves a segment's length.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests

# twilio ships no type information (no py.typed); its names are Any to mypy.
from twilio.base.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import (  # type: ignore[import-untyped,unused-ignore]
    TwilioHttpClient,
)
from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]

from service.domain.segments import normalise_body
from service.senders.base import (
    AmbiguousDeliveryError,
    DeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SentBefore,
)
from service.settings import SettingsInvalid
from service.webhooks import status_url

if TYPE_CHECKING:
    from datetime import datetime

    from service.settings import Settings

__all__ = [
    "RedirectedHttpClient",
    "TwilioSender",
    "delivery_error",
    "twilio_client",
    "validity_period",
]

log = logging.getLogger("hearth.senders.twilio")

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient": the partner texted STOP
HTTP_TIMEOUT_S = 15.0
MIN_VALIDITY_S, MAX_VALIDITY_S = 1, 36_000  # Twilio's bounds for ValidityPeriod
# How far back of the claim a lookup matches (clocks differ), and how many messages to the
# number it reads at most per query (a partner gets a handful a day).
LOOKUP_SLACK = timedelta(minutes=5)
LOOKUP_LIMIT = 100


class TwilioSender:
    """Sends each text through a Twilio ``Client``, from a number or a messaging service.

    ``from_`` is an E.164 number (sent as ``From``) or a messaging service sid ``MG…`` (sent
    as ``MessagingServiceSid``, and Twilio picks the number from the service's pool).
    """

    def __init__(self, client: Client, from_: str, public_url: str | None = None) -> None:
        self._client = client
        self._origin = (
            {"messaging_service_sid": from_} if _MESSAGING_SID.match(from_) else {"from_": from_}
        )
        self._public_url = public_url.rstrip("/") if public_url else None

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSender:
        """The sender for TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN / TWILIO_FROM, asking for
        delivery receipts at HEARTH_PUBLIC_URL."""
        client = twilio_client(settings)
        assert settings.twilio_from is not None  # twilio_client checked all three
        return cls(client, settings.twilio_from, settings.public_url)

    def status_callback(self, event_id: str) -> str | None:
        """Where Twilio posts this text's delivery receipts: the event id rides in the URL,
        so a receipt finds its send even if the worker died before recording the sid."""
        if self._public_url is None:
            return None
        return status_url(self._public_url, event_id)

    def send(self, text: Outgoing, now: datetime) -> str:
        """Hands the text (body normalised) to Twilio and returns its Message SID (``SM…``).

        Raises ``RetryableDeliveryError`` (nothing went out), ``AmbiguousDeliveryError``
        (a read timeout or a 5xx: Twilio may have accepted it) or ``PermanentDeliveryError``.
        """
        body = normalise_body(text.body)
        options: dict[str, object] = dict(self._origin)
        callback = self.status_callback(text.event_id)
        if callback is not None:
            options["status_callback"] = callback
        if text.deadline is not None:
            options["validity_period"] = validity_period(text.deadline, now)
        try:
            message = self._client.messages.create(to=text.to, body=body, **options)
        except TwilioException as e:
            # Not chained: the library's message may quote the number.
            raise delivery_error(e, body=body) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise delivery_error(e, body=body) from e
        return str(message.sid)

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        """Whether Twilio holds a message with this text's body to its number, created since
        ``since``: its sid, ``NOT_SENT``, or ``UNKNOWN`` when Twilio cannot be asked.

        Two reads, because Twilio's ``DateSent`` filter skips messages still queued (their
        date_sent is empty): the messages sent since ``since``'s day, then the newest
        messages to the number whatever their state, matched on creation time and body.
        """
        if not text.to or not text.matchable:
            return Lookup.UNKNOWN  # nothing to match on: never guess "not sent"
        # The library writes the datetime's own fields with a Z: it must be UTC already.
        floor = (since - LOOKUP_SLACK).astimezone(UTC)
        try:
            for query in (
                {"date_sent_after": floor, "limit": LOOKUP_LIMIT},
                {"limit": LOOKUP_LIMIT},
            ):
                for message in self._client.messages.list(to=text.to, **query):
                    created = message.date_created
                    if str(message.sid) in exclude:
                        continue  # another send's text with the same words
                    if text.same_words(message.body or "") and (
                        created is None or created >= floor
                    ):
                        return SentBefore(str(message.sid))
        except TwilioException as e:
            log.warning("cannot list Twilio's messages: %s", delivery_error(e))
            return Lookup.UNKNOWN
        except (requests.ConnectionError, requests.Timeout) as e:
            log.warning("cannot list Twilio's messages: %s", delivery_error(e))
            return Lookup.UNKNOWN
        return Lookup.NOT_SENT


def validity_period(deadline: datetime, now: datetime) -> int:
    """Twilio's ``ValidityPeriod`` for a text worth arriving until ``deadline``: whole
    seconds from ``now``, within Twilio's 1 to 36,000."""
    seconds = int((deadline - now).total_seconds())
    return max(MIN_VALIDITY_S, min(MAX_VALIDITY_S, seconds))


def twilio_client(settings: Settings) -> Client:
    """A ``Client`` for the configured account, talking to ``HEARTH_TWILIO_API_URL`` when set.

    ``SettingsInvalid`` unless TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM are set.
    """
    sid, token, from_ = (
        settings.twilio_account_sid,
        settings.twilio_auth_token,
        settings.twilio_from,
    )
    if not (sid and token and from_):
        raise SettingsInvalid(
            "the Twilio sender needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"
        )
    # The library logs every request at INFO with its parameters (To, Body): phone numbers
    # and the partners' words must never reach Hearth's logs.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
    http_client = (
        RedirectedHttpClient(settings.twilio_api_url, timeout=HTTP_TIMEOUT_S)
        if settings.twilio_api_url
        else TwilioHttpClient(timeout=HTTP_TIMEOUT_S)
    )
    return Client(sid, token, http_client=http_client)


class RedirectedHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """The library's HTTP client with every request sent to ``base_url`` instead of
    ``https://<product>.twilio.com`` (the path kept): the library has no base-URL option,
    and a local mock or a recording proxy needs one."""

    def __init__(self, base_url: str, *, timeout: float | None = HTTP_TIMEOUT_S) -> None:
        super().__init__(timeout=timeout)
        self._base = urlsplit(base_url)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        parts = urlsplit(url)
        path = self._base.path.rstrip("/") + parts.path
        url = urlunsplit((self._base.scheme, self._base.netloc, path, parts.query, ""))
        return super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )


def delivery_error(error: Exception, *, body: str | None = None) -> DeliveryError:
    """The delivery error for an exception of the twilio library (or of requests under it).

    The message names the HTTP status, Twilio's error code and Twilio's words, with phone
    numbers masked and ``body`` (when given) left out.
    """
    if isinstance(error, TwilioRestException | TwilioServiceException):
        status: int = error.status
        code: int | None = error.code if isinstance(error.code, int) else None
        said = _twilio_words(error)
        message = _scrub(f"Twilio answered HTTP {status} (error {code}): {said}", body)
        if code == OPTED_OUT:
            return PermanentDeliveryError(message, code, opted_out=True)
        if status in (401, 403):
            # Our credentials, not the text: failing every send for good over a rotated
            # token would lose them all; retried with backoff while someone fixes it.
            return RetryableDeliveryError(
                f"{message} — check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN", code
            )
        if status >= 500:
            # The request reached Twilio: it may have queued the text before failing.
            return AmbiguousDeliveryError(message, code)
        if status == 429 or status < 400:
            return RetryableDeliveryError(message, code)
        return PermanentDeliveryError(message, code)
    if isinstance(error, requests.ReadTimeout):
        # Sent, no answer in time: Twilio may well have taken it.
        return AmbiguousDeliveryError(
            _scrub(f"no answer from Twilio in time ({type(error).__name__}): {error}", body)
        )
    return RetryableDeliveryError(
        _scrub(f"cannot reach Twilio ({type(error).__name__}): {error}", body)
    )


_MESSAGING_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# A phone number as Twilio quotes it (E.164, maybe without the plus): 7 to 15 digits that
# are not part of a longer word such as a sid.
_PHONE_NUMBER = re.compile(r"(?<![\w+])(\+?\d{3})(\d{4,12})(?!\w)")


def _twilio_words(error: Exception) -> str:
    if isinstance(error, TwilioServiceException):
        return " - ".join(str(part) for part in (error.title, error.detail) if part)
    return str(getattr(error, "msg", ""))


def _scrub(message: str, body: str | None) -> str:
    if body:
        message = message.replace(body, "<body>")
    return _PHONE_NUMBER.sub(lambda m: m[1] + "*" * len(m[2]), message)
