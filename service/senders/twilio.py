"""The Twilio sender: one text becomes one ``messages.create`` call on Twilio's REST API.

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

import re
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    from datetime import datetime

    from service.settings import Settings

__all__ = ["TwilioSender", "delivery_error", "gsm_segments", "normalise_body"]

OPTED_OUT = 21610  # "Attempt to send to unsubscribed recipient": the partner texted STOP
HTTP_TIMEOUT_S = 15.0


class TwilioSender:
    """Sends each text through a Twilio ``Client``, from a number or a messaging service.

    ``from_`` is an E.164 number (sent as ``From``) or a messaging service sid ``MG…`` (sent
    as ``MessagingServiceSid``, and Twilio picks the number from the service's pool).
    """

    def __init__(self, client: Client, from_: str) -> None:
        self._client = client
        self._origin = (
            {"messaging_service_sid": from_} if _MESSAGING_SID.match(from_) else {"from_": from_}
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> TwilioSender:
        """The sender for TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN / TWILIO_FROM."""
        sid, token, from_ = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
        )
        if not (sid and token and from_):
            raise SettingsInvalid(
                "the Twilio sender needs TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"
            )
        http_client = TwilioHttpClient(timeout=HTTP_TIMEOUT_S)
        return cls(Client(sid, token, http_client=http_client), from_)

    def send(self, text: Outgoing, now: datetime) -> str:
        """Hands the text (body normalised) to Twilio and returns its Message SID (``SM…``).

        Raises ``RetryableDeliveryError`` (nothing went out), ``AmbiguousDeliveryError``
        (a read timeout or a 5xx: Twilio may have accepted it) or ``PermanentDeliveryError``.
        """
        body = normalise_body(text.body)
        try:
            message = self._client.messages.create(to=text.to, body=body, **self._origin)
        except TwilioException as e:
            # Not chained: the library's message may quote the number.
            raise delivery_error(e, body=body) from None
        except (requests.ConnectionError, requests.Timeout) as e:
            raise delivery_error(e, body=body) from e
        return str(message.sid)

    def lookup(self, text: Outgoing, since: datetime) -> SentBefore | Lookup:
        """Not asked yet (issue [F] reads Twilio's message list): a send whose earlier
        attempt may have reached Twilio stays unknown rather than risk a second text."""
        return Lookup.UNKNOWN


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


def normalise_body(body: str) -> str:
    """``body`` with curly quotes, dashes, ellipses and odd spaces as their ASCII forms."""
    return body.translate(_ASCII_PUNCTUATION)


def gsm_segments(body: str) -> int:
    """How many SMS segments ``body`` takes (an empty body still is one text).

    GSM-7 when every character is in the GSM 03.38 alphabet: 160 septets in one segment,
    153 per segment when split, the extension characters (``^{}\\[]~|€`` and form feed)
    taking two. Otherwise UCS-2: 70 UTF-16 units, 67 per segment, characters outside the
    BMP (most emoji) taking two. A two-unit character is never split across segments.
    """
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body):
        sizes = [2 if ch in _GSM_EXTENSION else 1 for ch in body]
        single, part = 160, 153
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
        single, part = 70, 67
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


_MESSAGING_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")

# A phone number as Twilio quotes it (E.164, maybe without the plus): 7 to 15 digits that
# are not part of a longer word such as a sid.
_PHONE_NUMBER = re.compile(r"(?<![\w+])(\+?\d{3})(\d{4,12})(?!\w)")

_ASCII_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",  # left single quote
        "\u2019": "'",  # right single quote, apostrophe
        "\u201a": "'",  # single low-9 quote
        "\u201b": "'",  # single high-reversed-9 quote
        "\u2032": "'",  # prime
        "\u201c": '"',  # left double quote
        "\u201d": '"',  # right double quote
        "\u201e": '"',  # double low-9 quote
        "\u201f": '"',  # double high-reversed-9 quote
        "\u2033": '"',  # double prime
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2015": "-",  # horizontal bar
        "\u2212": "-",  # minus sign
        "\u2026": "...",  # ellipsis
        "\u00a0": " ",  # no-break space
        "\u2007": " ",  # figure space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\u200b": None,  # zero-width space
        "\ufeff": None,  # zero-width no-break space (BOM)
    }
)

# GSM 03.38: the basic alphabet (one septet each) and its extension table (escape + septet).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")


def _twilio_words(error: Exception) -> str:
    if isinstance(error, TwilioServiceException):
        return " - ".join(str(part) for part in (error.title, error.detail) if part)
    return str(getattr(error, "msg", ""))


def _scrub(message: str, body: str | None) -> str:
    if body:
        message = message.replace(body, "<body>")
    return _PHONE_NUMBER.sub(lambda m: m[1] + "*" * len(m[2]), message)
