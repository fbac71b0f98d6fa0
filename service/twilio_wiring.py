"""Whether Twilio is wired to Hearth: the account, the sender, and where incoming texts go.

``check_wiring`` asks Twilio's API about the configured account and ``TWILIO_FROM`` (a
number, or a messaging service ``MG…``) and returns ``Finding``s in plain words; with
``fix=True`` it also points the sender's incoming-SMS webhook at Hearth. Hearth expects
incoming texts at ``<HEARTH_PUBLIC_URL>/sms/inbound`` by POST; delivery receipts need no
setting, since Hearth names its own status callback on every message it sends, so a
number's or service's own status callback is reported, not judged.

Errors (both ``HearthError``; neither message holds the auth token or a whole number)::

    SettingsInvalid
     └── CredentialsRefused    Twilio answered 401: the account sid or the token is wrong
    HearthError
     └── WiringCheckFailed     any other answer or no answer: the check could not finish
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urldefrag, urlsplit

import requests

# twilio ships no type information (no py.typed); its names are Any to mypy.
from twilio.base.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    TwilioException,
    TwilioRestException,
)

from service.domain.errors import HearthError
from service.settings import SettingsInvalid
from service.webhooks import INBOUND_PATH, STATUS_PATH

if TYPE_CHECKING:
    from collections.abc import Callable

    from service.settings import Settings

__all__ = [
    "CredentialsRefused",
    "Finding",
    "Verdict",
    "WiringCheckFailed",
    "WiringReport",
    "check_wiring",
    "mask_number",
    "mask_sid",
]

METHOD = "POST"


class Verdict(StrEnum):
    OK = "ok"  # right as it is
    NOTE = "note"  # worth knowing, nothing to change
    WARN = "warn"  # Hearth's own settings look wrong for going live
    FIX = "fix"  # Twilio's side needs changing (``--fix`` changes the webhook)
    FIXED = "fixed"  # changed by this check


@dataclass(frozen=True, slots=True)
class Finding:
    verdict: Verdict
    text: str

    def __str__(self) -> str:
        return f"{self.verdict}: {self.text}"


@dataclass(frozen=True, slots=True)
class WiringReport:
    findings: tuple[Finding, ...]

    @property
    def needs_fixing(self) -> bool:
        """Whether anything is left to change (a ``warn`` or a ``fix``)."""
        return any(f.verdict in (Verdict.WARN, Verdict.FIX) for f in self.findings)


class CredentialsRefused(SettingsInvalid):
    """Twilio does not know this account sid with this auth token (HTTP 401)."""


class WiringCheckFailed(HearthError):
    """Twilio could not be asked, or answered something the check cannot read."""


def check_wiring(client: Any, settings: Settings, *, fix: bool = False) -> WiringReport:
    """Ask Twilio (through ``client``, a ``twilio.rest.Client``) how the account and
    ``TWILIO_FROM`` are set up, and say what is right and what to change.

    With ``fix``, a sender whose incoming-SMS webhook is not Hearth's is updated to it
    (POST), unless HEARTH_PUBLIC_URL is one Twilio cannot reach. Reads only otherwise.
    Raises ``CredentialsRefused`` on a 401, ``WiringCheckFailed`` when Twilio cannot be asked.
    """
    sid, from_ = settings.twilio_account_sid, settings.twilio_from
    if not (sid and from_ and settings.twilio_auth_token):
        raise SettingsInvalid(
            "Twilio is not configured: set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and "
            "TWILIO_FROM (a number or a messaging service sid)"
        )
    findings = [_account(client, sid)]
    reachable = not _is_local(urlsplit(settings.public_url).hostname or "")
    findings.append(_public_url(settings.public_url, reachable))
    hearth = _Hearth(
        inbound=settings.public_url + INBOUND_PATH,
        status=settings.public_url + STATUS_PATH,
        may_fix=fix and reachable,
        fix_asked=fix,
    )
    if from_.startswith("MG"):
        findings.extend(_messaging_service(client, from_, sid, hearth))
    else:
        findings.extend(_number(client, from_, sid, hearth))
    return WiringReport(tuple(findings))


def mask_sid(sid: str) -> str:
    """``AC12…ef``: enough to tell two sids apart, not the whole identifier."""
    return f"{sid[:4]}…{sid[-2:]}"


def mask_number(number: str) -> str:
    """``+155*******``: the country and area, as the sender's error messages mask them."""
    return number[:4] + "*" * max(len(number) - 4, 0)


@dataclass(frozen=True, slots=True)
class _Hearth:
    inbound: str  # the webhook URL Hearth expects
    status: str  # the status callback Hearth names per message
    may_fix: bool  # --fix was given and the URL is one Twilio can reach
    fix_asked: bool


_LOCAL_NAMES = re.compile(r"^(localhost|.*\.localhost|.*\.local|0\.0\.0\.0)$", re.IGNORECASE)


def _public_url(url: str, reachable: bool) -> Finding:
    if not reachable:
        return Finding(
            Verdict.WARN,
            f"HEARTH_PUBLIC_URL is {url}, which Twilio cannot reach: set it to the public "
            "https URL Hearth is served at (behind a proxy, the proxy's)",
        )
    if urlsplit(url).scheme != "https":
        return Finding(
            Verdict.WARN,
            f"HEARTH_PUBLIC_URL is {url}: Twilio needs a public https URL (and signs each "
            "request over the URL it calls, so it must be the one Twilio uses)",
        )
    return Finding(Verdict.OK, f"HEARTH_PUBLIC_URL {url} is a public https URL")


def _is_local(host: str) -> bool:
    if _LOCAL_NAMES.match(host):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


def _account(client: Any, sid: str) -> Finding:
    account = _ask(lambda: client.api.v2010.accounts(sid).fetch(), f"account {mask_sid(sid)}")
    name = f"account {mask_sid(sid)}"
    status = str(account.status)
    if status != "active":
        return Finding(
            Verdict.FIX,
            f"{name} is {status}: Twilio sends nothing from it until it is active again "
            "(see the Twilio console)",
        )
    if str(account.type).lower() == "trial":
        return Finding(
            Verdict.OK,
            f"{name} is active (a trial account: it texts only verified numbers, each text "
            "prefixed by Twilio)",
        )
    return Finding(Verdict.OK, f"{name} is active")


def _number(client: Any, number: str, sid: str, hearth: _Hearth) -> list[Finding]:
    name = f"the number {mask_number(number)}"
    listed = _ask(lambda: client.incoming_phone_numbers.list(phone_number=number), name)
    # The PhoneNumber filter also matches partial numbers: only an exact one is ours.
    found = next((n for n in listed if n.phone_number == number), None)
    if found is None:
        return [
            Finding(
                Verdict.FIX,
                f"{name} is not on account {mask_sid(sid)}: set TWILIO_FROM to one of this "
                "account's numbers (or a messaging service sid)",
            )
        ]
    out = []
    capabilities = found.capabilities if isinstance(found.capabilities, dict) else {}
    if capabilities.get("sms") is False:
        able = ", ".join(k for k, v in sorted(capabilities.items()) if v) or "nothing"
        out.append(
            Finding(
                Verdict.FIX,
                f"{name} cannot send or receive SMS (it can: {able}): use a number with SMS",
            )
        )
    app_sid = str(found.sms_application_sid or "")
    changes = {"sms_url": hearth.inbound, "sms_method": METHOD}
    if app_sid:
        changes["sms_application_sid"] = ""  # a TwiML app takes precedence over sms_url
    out.append(
        _webhook(
            name,
            str(found.sms_url or ""),
            str(found.sms_method or ""),
            f"the TwiML app {mask_sid(app_sid)}" if app_sid else None,
            hearth,
            lambda: client.incoming_phone_numbers(found.sid).update(**changes),
        )
    )
    out.append(_status_callback(name, str(found.status_callback or ""), hearth))
    return out


def _messaging_service(client: Any, service_sid: str, sid: str, hearth: _Hearth) -> list[Finding]:
    name = f"the messaging service {mask_sid(service_sid)}"
    try:
        service = client.messaging.v1.services(service_sid).fetch()
    except TwilioRestException as e:
        if e.status != 404:
            raise _failed(e, name) from None
        return [
            Finding(
                Verdict.FIX,
                f"{name} is not on account {mask_sid(sid)}: set TWILIO_FROM to one of "
                "this account's messaging services (or a number)",
            )
        ]
    except (TwilioException, requests.RequestException) as e:
        raise _failed(e, name) from None
    per_number = bool(service.use_inbound_webhook_on_number)
    webhook = _webhook(
        name,
        str(service.inbound_request_url or ""),
        str(service.inbound_method or ""),
        "each number's own SMS webhook (use_inbound_webhook_on_number)" if per_number else None,
        hearth,
        lambda: client.messaging.v1.services(service_sid).update(
            inbound_request_url=hearth.inbound,
            inbound_method=METHOD,
            use_inbound_webhook_on_number=False,
        ),
    )
    return [
        Finding(Verdict.OK, f"{name} is on account {mask_sid(sid)}"),
        webhook,
        _status_callback(name, str(service.status_callback or ""), hearth),
    ]


def _webhook(
    name: str,
    url: str,
    method: str,
    instead: str | None,
    hearth: _Hearth,
    update: Callable[[], object],
) -> Finding:
    """The finding on a sender's incoming-SMS webhook (``url`` by ``method``; ``instead``:
    what takes incoming texts in its place), after ``update`` when it is wrong and may be
    fixed."""
    # A fragment (#rc=5: Twilio's connection overrides) is not part of the URL Twilio calls.
    if instead is None and urldefrag(url).url == hearth.inbound and method.upper() == METHOD:
        return Finding(Verdict.OK, f"{name} sends incoming SMS to {url} ({METHOD})")
    if instead is not None:
        now, was = f"incoming SMS go to {instead}", instead
    elif url:
        now, was = f"SMS webhook points to {url} ({method or METHOD})", f"{url} ({method})"
    else:
        now, was = "SMS webhook is not set", "no webhook"
    if hearth.may_fix:
        _ask(update, name)
        return Finding(
            Verdict.FIXED,
            f"{name}'s SMS webhook now points to {hearth.inbound} ({METHOD}), instead of {was}",
        )
    return Finding(
        Verdict.FIX,
        f"{name}'s {now}; Hearth expects {hearth.inbound} ({METHOD})" + _not_fixed(hearth),
    )


def _not_fixed(hearth: _Hearth) -> str:
    if hearth.fix_asked:
        return " (not changed: set HEARTH_PUBLIC_URL to Hearth's public URL first)"
    return " (hearth twilio check --fix sets it)"


def _status_callback(name: str, url: str, hearth: _Hearth) -> Finding:
    whose = f"{name}'s"
    per_message = f"Hearth names its own, {hearth.status}, on every message it sends"
    if not url:
        return Finding(Verdict.NOTE, f"{whose} status callback is not set; {per_message}")
    if urldefrag(url).url.split("?")[0] == hearth.status:
        return Finding(Verdict.NOTE, f"{whose} status callback is Hearth's, {hearth.status}")
    return Finding(
        Verdict.NOTE,
        f"{whose} status callback points to {url}; {per_message}, so that one only hears of "
        "texts sent some other way (check that it is meant to be there)",
    )


_T = TypeVar("_T")


def _ask(call: Callable[[], _T], what: str) -> _T:
    try:
        return call()
    except (TwilioException, requests.RequestException) as e:
        raise _failed(e, what) from None


def _failed(error: Exception, what: str) -> HearthError:
    if isinstance(error, TwilioRestException):
        if error.status == 401:
            return CredentialsRefused(
                "Twilio refused TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (HTTP 401): the "
                "account sid or the auth token is wrong; copy both from the Twilio console"
            )
        code = f", error {error.code}" if error.code else ""
        return WiringCheckFailed(
            f"Twilio answered HTTP {error.status}{code} when asked about {what}: "
            + _scrub(str(error.msg))
        )
    return WiringCheckFailed(
        f"cannot ask Twilio about {what} ({type(error).__name__}): {_scrub(str(error))}"
    )


def _scrub(text: str) -> str:
    """``text`` with phone numbers and sids masked (the library quotes both in URLs)."""
    text = _SID.sub(lambda m: mask_sid(m[0]), text)
    return _PHONE_NUMBER.sub(lambda m: mask_number(m[0]), text)


_SID = re.compile(r"\b[A-Z]{2}[0-9a-fA-F]{32}\b")
_PHONE_NUMBER = re.compile(r"(?<![\w+])\+?\d{7,15}(?!\w)")
