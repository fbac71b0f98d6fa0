"""``check_wiring`` against Prism serving Twilio's 2010 API (the account and the number), and
against a small stateful stub for what Prism cannot serve: messaging services (Twilio's
Messaging v1 API) and a 401."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import pytest
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from service.settings import Settings
from service.twilio_wiring import (
    CredentialsRefused,
    Finding,
    Verdict,
    WiringCheckFailed,
    check_wiring,
)
from tests.twilio_mock import ACCOUNT_SID, AUTH_TOKEN, make_client

# The number in the spec's IncomingPhoneNumbers example, which Prism returns for any filter:
# SMS capability off, no SMS webhook, no status callback.
EXAMPLE_NUMBER = "+18089255327"
EXAMPLE_NUMBER_SID = "PN" + "a" * 32
SERVICE = "MG" + "fedcba9876543210" * 2
PUBLIC = "https://hearth.example"
INBOUND = f"{PUBLIC}/sms/inbound"
NUMBERS = f"/2010-04-01/Accounts/{ACCOUNT_SID}/IncomingPhoneNumbers"


def _settings(from_: str = EXAMPLE_NUMBER, public_url: str | None = PUBLIC) -> Settings:
    values = {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM": from_,
    }
    if public_url is not None:
        values["HEARTH_PUBLIC_URL"] = public_url
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _lines(findings: tuple[Finding, ...]) -> list[str]:
    return [str(f) for f in findings]


# --- a number, against Prism's examples ----------------------------------------------------


def test_check_reports_the_example_account_and_number_in_plain_lines(
    twilio_mock_url: str,
) -> None:
    client, http = make_client(twilio_mock_url)
    report = check_wiring(client, _settings())
    assert _lines(report.findings) == [
        "ok: account AC01…ef is active",
        "ok: HEARTH_PUBLIC_URL https://hearth.example is a public https URL",
        "fix: the number +180******** cannot send or receive SMS (it can: mms, voice): "
        "use a number with SMS",
        "fix: the number +180********'s SMS webhook is not set; Hearth expects "
        "https://hearth.example/sms/inbound (POST) (hearth twilio check --fix sets it)",
        "note: the number +180********'s status callback is not set; Hearth names its own, "
        "https://hearth.example/sms/status, on every message it sends",
    ]
    assert report.needs_fixing
    asked = http._test_only_last_request
    assert (asked.method, urlsplit(asked.url).path) == ("GET", f"{NUMBERS}.json")
    assert asked.params["PhoneNumber"] == EXAMPLE_NUMBER


def test_fix_points_the_numbers_sms_webhook_at_hearth_by_post(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    report = check_wiring(client, _settings(), fix=True)
    assert (
        "fixed: the number +180********'s SMS webhook now points to "
        "https://hearth.example/sms/inbound (POST), instead of no webhook"
    ) in _lines(report.findings)
    # The update is the last request before the (local) status callback note.
    sent = http._test_only_last_request
    assert (sent.method, urlsplit(sent.url).path) == (
        "POST",
        f"{NUMBERS}/{EXAMPLE_NUMBER_SID}.json",
    )
    assert sent.data == {"SmsUrl": INBOUND, "SmsMethod": "POST"}


def test_a_number_not_on_the_account_is_a_fix_that_fix_does_not_touch(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    report = check_wiring(client, _settings(from_="+15551234567"), fix=True)
    assert _lines(report.findings)[-1] == (
        "fix: the number +155******** is not on account AC01…ef: set TWILIO_FROM to one of "
        "this account's numbers (or a messaging service sid)"
    )
    assert http._test_only_last_request.method == "GET"  # nothing updated
    assert report.needs_fixing


def test_a_local_public_url_is_a_warning_and_fix_leaves_the_webhook_alone(
    twilio_mock_url: str,
) -> None:
    client, http = make_client(twilio_mock_url)
    report = check_wiring(client, _settings(public_url=None), fix=True)
    lines = _lines(report.findings)
    assert lines[1].startswith(
        "warn: HEARTH_PUBLIC_URL is http://127.0.0.1:8000, which Twilio cannot reach"
    )
    assert lines[3].endswith(
        "Hearth expects http://127.0.0.1:8000/sms/inbound (POST) "
        "(not changed: set HEARTH_PUBLIC_URL to Hearth's public URL first)"
    )
    assert http._test_only_last_request.method == "GET"


@pytest.mark.parametrize(
    ("url", "verdict"),
    [
        ("http://hearth.example", Verdict.WARN),
        ("https://localhost:8443", Verdict.WARN),
        ("https://192.168.1.20", Verdict.WARN),
        ("https://hearth.example/base", Verdict.OK),
    ],
)
def test_the_public_url_must_be_public_and_https(
    twilio_mock_url: str, url: str, verdict: Verdict
) -> None:
    client, _ = make_client(twilio_mock_url)
    assert check_wiring(client, _settings(public_url=url)).findings[1].verdict is verdict


def test_the_check_without_twilio_settings_is_a_settings_error() -> None:
    with pytest.raises(Exception, match="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"):
        check_wiring(object(), Settings(_env_file=None))


# --- a messaging service and a refused token, against the stub -----------------------------


class TwilioStub(TwilioHttpClient):  # type: ignore[misc]
    """Twilio's account and Messaging v1 Services endpoints, stateful, in process.

    Prism serves only the 2010 API; this answers ``GET /2010-04-01/Accounts/{sid}.json`` and
    ``GET``/``POST /v1/Services/{sid}`` with Twilio's JSON shapes, and ``refuse`` makes every
    request a 401 as Twilio gives for a wrong token.
    """

    def __init__(self, service: dict[str, Any] | None = None, *, refuse: bool = False) -> None:
        super().__init__()
        self.service = service
        self.refuse = refuse
        self.updates: list[dict[str, object]] = []

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
    ) -> Response:
        path = urlsplit(url).path
        if self.refuse:
            return _error(401, 20003, "Authenticate")
        if path == f"/2010-04-01/Accounts/{ACCOUNT_SID}.json":
            return _json(200, {"sid": ACCOUNT_SID, "status": "active", "type": "Full"})
        if self.service is None or path != f"/v1/Services/{self.service['sid']}":
            return _error(404, 20404, f"The requested resource {path} was not found")
        if method == "POST":
            assert data is not None
            self.updates.append(dict(data))
            self.service["inbound_request_url"] = data.get("InboundRequestUrl")
            self.service["inbound_method"] = data.get("InboundMethod")
            self.service["use_inbound_webhook_on_number"] = (
                data.get("UseInboundWebhookOnNumber") == "true"
            )
        return _json(200, self.service)


def _json(status: int, body: object) -> Response:
    return Response(status, json.dumps(body))


def _error(status: int, code: int, message: str) -> Response:
    more = f"https://www.twilio.com/docs/errors/{code}"
    return _json(status, {"code": code, "message": message, "more_info": more, "status": status})


def _service(**fields: object) -> dict[str, Any]:
    return {
        "sid": SERVICE,
        "account_sid": ACCOUNT_SID,
        "friendly_name": "Hearth",
        "inbound_request_url": None,
        "inbound_method": "POST",
        "use_inbound_webhook_on_number": False,
        "status_callback": None,
        **fields,
    }


def _stub_client(stub: TwilioStub) -> Client:
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=stub)


def test_a_service_sending_to_hearth_is_all_ok() -> None:
    stub = TwilioStub(_service(inbound_request_url=INBOUND + "#rc=5"))
    report = check_wiring(_stub_client(stub), _settings(from_=SERVICE))
    assert _lines(report.findings)[2:] == [
        "ok: the messaging service MGfe…10 is on account AC01…ef",
        f"ok: the messaging service MGfe…10 sends incoming SMS to {INBOUND}#rc=5 (POST)",
        "note: the messaging service MGfe…10's status callback is not set; Hearth names its "
        "own, https://hearth.example/sms/status, on every message it sends",
    ]
    assert not report.needs_fixing


def test_a_service_webhook_elsewhere_or_by_get_is_a_fix() -> None:
    stub = TwilioStub(_service(inbound_request_url="https://old.example/sms", inbound_method="GET"))
    report = check_wiring(_stub_client(stub), _settings(from_=SERVICE))
    assert str(report.findings[3]) == (
        "fix: the messaging service MGfe…10's SMS webhook points to https://old.example/sms "
        f"(GET); Hearth expects {INBOUND} (POST) (hearth twilio check --fix sets it)"
    )
    assert report.needs_fixing
    assert stub.updates == []


def test_a_service_that_defers_to_each_numbers_webhook_is_a_fix() -> None:
    stub = TwilioStub(_service(inbound_request_url=INBOUND, use_inbound_webhook_on_number=True))
    report = check_wiring(_stub_client(stub), _settings(from_=SERVICE))
    assert report.findings[3].verdict is Verdict.FIX
    assert "use_inbound_webhook_on_number" in report.findings[3].text


def test_fix_points_the_service_at_hearth_and_a_second_check_finds_it_right() -> None:
    stub = TwilioStub(_service(inbound_request_url="https://old.example/sms",
                               use_inbound_webhook_on_number=True))  # fmt: skip
    client = _stub_client(stub)
    fixed = check_wiring(client, _settings(from_=SERVICE), fix=True)
    assert str(fixed.findings[3]) == (
        f"fixed: the messaging service MGfe…10's SMS webhook now points to {INBOUND} (POST), "
        "instead of each number's own SMS webhook (use_inbound_webhook_on_number)"
    )
    assert stub.updates == [
        {
            "InboundRequestUrl": INBOUND,
            "InboundMethod": "POST",
            "UseInboundWebhookOnNumber": "false",
        }
    ]
    assert not fixed.needs_fixing
    assert not check_wiring(client, _settings(from_=SERVICE)).needs_fixing


def test_a_service_status_callback_elsewhere_is_a_note_not_a_fix() -> None:
    stub = TwilioStub(
        _service(inbound_request_url=INBOUND, status_callback="https://crm.example/status")
    )
    report = check_wiring(_stub_client(stub), _settings(from_=SERVICE))
    assert report.findings[-1].verdict is Verdict.NOTE
    assert report.findings[-1].text.startswith(
        "the messaging service MGfe…10's status callback points to https://crm.example/status;"
    )
    assert not report.needs_fixing


def test_a_service_not_on_the_account_is_a_fix() -> None:
    report = check_wiring(_stub_client(TwilioStub()), _settings(from_=SERVICE), fix=True)
    assert str(report.findings[-1]) == (
        "fix: the messaging service MGfe…10 is not on account AC01…ef: set TWILIO_FROM to one "
        "of this account's messaging services (or a number)"
    )


def test_a_401_says_the_sid_or_token_is_wrong_without_either() -> None:
    with pytest.raises(CredentialsRefused, match="account sid or the auth token is wrong") as e:
        check_wiring(_stub_client(TwilioStub(refuse=True)), _settings())
    assert AUTH_TOKEN not in str(e.value)
    assert ACCOUNT_SID not in str(e.value)


def test_no_answer_is_a_check_failure_with_the_sid_masked() -> None:
    client, _ = make_client("http://127.0.0.1:1", timeout=2)
    with pytest.raises(WiringCheckFailed, match="cannot ask Twilio about account AC01…ef") as e:
        check_wiring(client, _settings())
    assert ACCOUNT_SID not in str(e.value)
