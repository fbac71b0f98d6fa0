"""``check_wiring`` against Prism serving Twilio's 2010 API (the account and the number), and
against the stateful fake (tests/twilio_fake.py) for what Prism cannot: messaging services
(Twilio's Messaging v1 API), a number whose webhook changes, and a refused token."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from twilio.rest import Client

from service.senders.twilio import RedirectedHttpClient
from service.settings import Settings
from service.twilio_wiring import (
    CredentialsRefused,
    Finding,
    Verdict,
    WiringCheckFailed,
    check_wiring,
    mask_sid,
)
from tests.twilio_fake import FakeMessagingService, TwilioFake
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


# --- a messaging service and a refused token, against the stateful fake ------------------


@pytest.fixture
def fake() -> Iterator[TwilioFake]:
    with TwilioFake(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as started:
        yield started


def _client(fake: TwilioFake, token: str = AUTH_TOKEN) -> Client:
    return Client(ACCOUNT_SID, token, http_client=RedirectedHttpClient(fake.url))


def _service(fake: TwilioFake) -> FakeMessagingService:
    [service] = fake.messaging_services
    return service


def test_a_service_sending_to_hearth_is_all_ok(fake: TwilioFake) -> None:
    sid = fake.add_messaging_service(inbound_request_url=INBOUND + "#rc=5")
    report = check_wiring(_client(fake), _settings(from_=sid))
    name = f"the messaging service {mask_sid(sid)}"
    assert _lines(report.findings)[2:] == [
        f"ok: {name} is on account AC01…ef",
        f"ok: {name} sends incoming SMS to {INBOUND}#rc=5 (POST)",
        f"note: {name}'s status callback is not set; Hearth names its own, "
        "https://hearth.example/sms/status, on every message it sends",
    ]
    assert not report.needs_fixing


def test_a_service_webhook_elsewhere_or_by_get_is_a_fix(fake: TwilioFake) -> None:
    sid = fake.add_messaging_service(
        inbound_request_url="https://old.example/sms", inbound_method="GET"
    )
    report = check_wiring(_client(fake), _settings(from_=sid))
    assert str(report.findings[3]) == (
        f"fix: the messaging service {mask_sid(sid)}'s SMS webhook points to "
        f"https://old.example/sms (GET); Hearth expects {INBOUND} (POST) "
        "(hearth twilio check --fix sets it)"
    )
    assert report.needs_fixing
    assert _service(fake).inbound_request_url == "https://old.example/sms"  # untouched


def test_a_service_that_defers_to_each_numbers_webhook_is_a_fix(fake: TwilioFake) -> None:
    sid = fake.add_messaging_service(
        inbound_request_url=INBOUND, use_inbound_webhook_on_number=True
    )
    report = check_wiring(_client(fake), _settings(from_=sid))
    assert report.findings[3].verdict is Verdict.FIX
    assert "use_inbound_webhook_on_number" in report.findings[3].text


def test_fix_points_the_service_at_hearth_and_a_second_check_finds_it_right(
    fake: TwilioFake,
) -> None:
    sid = fake.add_messaging_service(
        inbound_request_url="https://old.example/sms", use_inbound_webhook_on_number=True
    )
    client = _client(fake)
    fixed = check_wiring(client, _settings(from_=sid), fix=True)
    assert str(fixed.findings[3]) == (
        f"fixed: the messaging service {mask_sid(sid)}'s SMS webhook now points to {INBOUND} "
        "(POST), instead of each number's own SMS webhook (use_inbound_webhook_on_number)"
    )
    service = _service(fake)
    assert (
        service.inbound_request_url,
        service.inbound_method,
        service.use_inbound_webhook_on_number,
    ) == (INBOUND, "POST", False)
    assert not fixed.needs_fixing
    assert not check_wiring(client, _settings(from_=sid)).needs_fixing


def test_a_service_status_callback_elsewhere_is_a_note_not_a_fix(fake: TwilioFake) -> None:
    sid = fake.add_messaging_service(
        inbound_request_url=INBOUND, status_callback="https://crm.example/status"
    )
    report = check_wiring(_client(fake), _settings(from_=sid))
    assert report.findings[-1].verdict is Verdict.NOTE
    assert report.findings[-1].text.startswith(
        f"the messaging service {mask_sid(sid)}'s status callback points to "
        "https://crm.example/status;"
    )
    assert not report.needs_fixing


def test_a_service_not_on_the_account_is_a_fix(fake: TwilioFake) -> None:
    report = check_wiring(_client(fake), _settings(from_=SERVICE), fix=True)
    assert str(report.findings[-1]) == (
        "fix: the messaging service MGfe…10 is not on account AC01…ef: set TWILIO_FROM to one "
        "of this account's messaging services (or a number)"
    )


def test_fix_on_a_number_of_the_fake_sets_its_webhook(fake: TwilioFake) -> None:
    fake.add_number("+15557654321", sms_url="https://old.example/sms", sms_method="GET")
    report = check_wiring(_client(fake), _settings(from_="+15557654321"), fix=True)
    assert str(report.findings[2]) == (
        f"fixed: the number +155********'s SMS webhook now points to {INBOUND} (POST), "
        "instead of https://old.example/sms (GET)"
    )
    [number] = fake.numbers
    assert (number.sms_url, number.sms_method) == (INBOUND, "POST")
    assert not report.needs_fixing


def test_a_401_says_the_sid_or_token_is_wrong_without_either(fake: TwilioFake) -> None:
    wrong = "not-the-token"
    with pytest.raises(CredentialsRefused, match="account sid or the auth token is wrong") as e:
        check_wiring(_client(fake, wrong), _settings())
    assert wrong not in str(e.value)
    assert ACCOUNT_SID not in str(e.value)


def test_no_answer_is_a_check_failure_with_the_sid_masked() -> None:
    client, _ = make_client("http://127.0.0.1:1", timeout=2)
    with pytest.raises(WiringCheckFailed, match="cannot ask Twilio about account AC01…ef") as e:
        check_wiring(client, _settings())
    assert ACCOUNT_SID not in str(e.value)
