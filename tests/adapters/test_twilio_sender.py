"""The Twilio sender against Prism serving Twilio's OpenAPI spec (tests/twilio_mock.py)."""

import re
import socket
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.request_validator import RequestValidator

from service.domain.segments import normalise_body
from service.domain.segments import segments as gsm_segments
from service.senders import (
    AmbiguousDeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from service.senders.twilio import TwilioSender, delivery_error, validity_period
from service.settings import Settings, SettingsInvalid
from tests.twilio_mock import ACCOUNT_SID, AUTH_TOKEN, make_client

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)
TO = "+4915112340001"
FROM = "+15005550006"
MESSAGING_SERVICE = "MG" + "fedcba9876543210" * 2
URI = f"/Accounts/{ACCOUNT_SID}/Messages.json"
PHONE_NUMBER = re.compile(r"\+?\d{7,}")


def _text(body: str = "Hi Alex, check-in time.", to: str = TO) -> Outgoing:
    return Outgoing(
        event_id="alex-sam/check_in/20261125T2100/prompt/alex",
        occurrence_id="alex-sam/check_in/20261125T2100",
        couple="alex-sam",
        ritual="check_in",
        partner="alex",
        to=to,
        body=body,
    )


def test_send_returns_the_message_sid_and_posts_to_from_and_body(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    sid = TwilioSender(client, FROM).send(_text(), NOW)
    assert sid == "SM" + "a" * 32  # the spec's example: Prism does not echo
    sent = http._test_only_last_request
    assert sent.method == "POST"
    assert sent.url.endswith(f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json")
    assert sent.data == {"To": TO, "From": FROM, "Body": "Hi Alex, check-in time."}


def test_messaging_service_sid_is_sent_as_messaging_service_sid_not_from(
    twilio_mock_url: str,
) -> None:
    client, http = make_client(twilio_mock_url)
    TwilioSender(client, MESSAGING_SERVICE).send(_text(), NOW)
    assert http._test_only_last_request.data == {
        "To": TO,
        "MessagingServiceSid": MESSAGING_SERVICE,
        "Body": "Hi Alex, check-in time.",
    }


def test_rate_limited_429_is_retryable_with_twilio_code_20429(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    http.force_status(429)
    with pytest.raises(RetryableDeliveryError, match="HTTP 429") as caught:
        TwilioSender(client, FROM).send(_text(), NOW)
    assert caught.value.code == 20429
    assert http._test_only_last_response.status_code == 429


@pytest.mark.parametrize(("status", "code"), [(500, 20500), (503, 20503)])
def test_provider_5xx_is_ambiguous_never_retried_blindly(
    twilio_mock_url: str, status: int, code: int
) -> None:
    # The request reached Twilio, which may have queued the text before failing: sending it
    # again could text the partner twice, so it is neither retryable nor permanent.
    client, http = make_client(twilio_mock_url)
    http.force_status(status)
    with pytest.raises(AmbiguousDeliveryError) as caught:
        TwilioSender(client, FROM).send(_text(), NOW)
    assert caught.value.code == code
    assert not isinstance(caught.value, RetryableDeliveryError | PermanentDeliveryError)


def test_forced_status_applies_to_one_request_only(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    sender = TwilioSender(client, FROM)
    http.force_status(503)
    with pytest.raises(AmbiguousDeliveryError):
        sender.send(_text(), NOW)
    assert sender.send(_text(), NOW).startswith("SM")


def test_missing_to_is_permanent_and_its_message_holds_no_phone_number(
    twilio_mock_url: str,
) -> None:
    client, http = make_client(twilio_mock_url)
    # requests leaves a None field out of the form, so the request really lacks To.
    text = _text(to=None)  # type: ignore[arg-type]
    with pytest.raises(PermanentDeliveryError) as caught:
        TwilioSender(client, FROM).send(text, NOW)
    assert http._test_only_last_response.status_code == 422  # real Twilio: 400
    assert caught.value.opted_out is False
    assert "HTTP 422" in str(caught.value)
    assert FROM not in str(caught.value)
    assert not PHONE_NUMBER.search(str(caught.value))


def test_opted_out_21610_is_permanent_and_marked_opted_out() -> None:
    # Prism cannot produce 21610 from the spec, so the mapping is tested on its own.
    error = TwilioRestException(
        status=400,
        uri=URI,
        msg=f"Unable to create record: Attempt to send to unsubscribed recipient {TO}",
        code=21610,
        method="POST",
    )
    mapped = delivery_error(error)
    assert isinstance(mapped, PermanentDeliveryError)
    assert mapped.opted_out is True
    assert mapped.code == 21610
    assert TO not in str(mapped)
    assert "+491" + "*" * 10 in str(mapped)


def test_invalid_number_21211_is_permanent_not_opted_out_and_masks_the_number() -> None:
    error = TwilioRestException(
        status=400,
        uri=URI,
        msg="Unable to create record: The 'To' number +15005550001 is not a valid phone number.",
        code=21211,
        method="POST",
    )
    mapped = delivery_error(error)
    assert isinstance(mapped, PermanentDeliveryError)
    assert mapped.opted_out is False
    assert mapped.code == 21211
    assert str(mapped) == (
        "Twilio answered HTTP 400 (error 21211): Unable to create record: "
        "The 'To' number +150******** is not a valid phone number."
    )


def test_an_error_message_quoting_the_body_leaves_it_out() -> None:
    body = "Date night at 7, love"
    error = TwilioRestException(400, URI, f"Unable to create record: bad body {body}", 21602)
    assert body not in str(delivery_error(error, body=body))


@pytest.mark.parametrize(
    "error",
    [
        TwilioException("HTTP Client is an abstract class"),
        requests.ConnectionError("connection reset"),
        requests.ConnectTimeout("connect timed out"),
    ],
    ids=["twilio-exception", "connection-error", "connect-timeout"],
)
def test_library_and_network_failures_before_sending_are_retryable(error: Exception) -> None:
    assert isinstance(delivery_error(error), RetryableDeliveryError)


def test_a_read_timeout_is_ambiguous_twilio_may_have_the_text() -> None:
    error = delivery_error(requests.ReadTimeout("read timed out"))
    assert isinstance(error, AmbiguousDeliveryError)
    assert not isinstance(error, RetryableDeliveryError)


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as s:  # a port nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client, _ = make_client(f"http://127.0.0.1:{port}", timeout=5)
    with pytest.raises(RetryableDeliveryError, match="cannot reach Twilio") as caught:
        TwilioSender(client, FROM).send(_text(), NOW)
    assert caught.value.code is None
    assert TO not in str(caught.value)


def test_smart_quotes_dashes_and_ellipsis_are_sent_as_ascii(twilio_mock_url: str) -> None:
    client, http = make_client(twilio_mock_url)
    TwilioSender(client, FROM).send(_text("It\u2019s \u201cdate night\u201d \u2013 8pm\u2026"), NOW)
    assert http._test_only_last_request.data["Body"] == 'It\'s "date night" - 8pm...'


def test_normalised_body_stays_gsm_7() -> None:
    body = "Alex\u2019s turn \u2014 pick the \u201cspot\u201d\u00a0\u2026 " + "x" * 120
    assert gsm_segments(body) == 3  # one curly quote makes it UCS-2: 152 units
    assert gsm_segments(normalise_body(body)) == 1  # 154 septets
    assert normalise_body("Plain text, caf\u00e9 \u00e0 8") == "Plain text, caf\u00e9 \u00e0 8"


@pytest.mark.parametrize(
    ("body", "segments"),
    [
        ("", 1),
        ("a" * 160, 1),
        ("a" * 161, 2),
        ("a" * 306, 2),
        ("a" * 307, 3),
        ("{" * 80, 1),  # ^{}\[]~| and the euro sign take two septets each
        ("{" * 81, 2),
        ("a" * 159 + "\u20ac", 2),
        ("^}\\[~]|" + "a" * 146, 1),
        ("a" * 152 + "{" * 77, 3),  # an escape pair never straddles two segments
        ("\u00e9\u00c7\u00f1\u00df\u00a3\u00a5\u00a7" + "a" * 153, 1),  # GSM-7 letters, one each
        ("\U0001f44d" + "a" * 68, 1),  # an emoji makes it UCS-2: two units, 70 per text
        ("\U0001f44d" + "a" * 69, 2),
        ("\u00e7" * 70, 1),  # c-cedilla is not GSM-7 (only the capital is)
        ("\u00e7" * 71, 2),
        ("\u00e7" * 134, 2),
        ("\u00e7" * 135, 3),
        ("\u2019" + "a" * 69, 1),
        ("\u2019" + "a" * 70, 2),
    ],
)
def test_gsm_segments_counts_gsm_7_and_ucs_2(body: str, segments: int) -> None:
    assert gsm_segments(body) == segments


def test_from_settings_sends_from_the_configured_number() -> None:
    settings = Settings(
        _env_file=None,
        TWILIO_ACCOUNT_SID=ACCOUNT_SID,
        TWILIO_AUTH_TOKEN=AUTH_TOKEN,
        TWILIO_FROM=MESSAGING_SERVICE,
    )
    sender = TwilioSender.from_settings(settings)
    assert sender._client.account_sid == ACCOUNT_SID
    assert sender._origin == {"messaging_service_sid": MESSAGING_SERVICE}


def test_from_settings_without_twilio_is_a_settings_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SettingsInvalid, match="TWILIO_ACCOUNT_SID"):
        TwilioSender.from_settings(Settings(_env_file=None))


WEBHOOK = "https://hearth.example/twilio/sms?couple=alex-sam"
REPLY = {"From": TO, "To": FROM, "Body": "done", "MessageSid": "SM" + "b" * 32}


def test_twilio_signature_round_trip_validates() -> None:
    validator = RequestValidator(AUTH_TOKEN)
    signature = validator.compute_signature(WEBHOOK, REPLY)
    assert validator.validate(WEBHOOK, REPLY, signature)


def test_twilio_signature_fails_for_a_changed_parameter() -> None:
    validator = RequestValidator(AUTH_TOKEN)
    signature = validator.compute_signature(WEBHOOK, REPLY)
    assert not validator.validate(WEBHOOK, REPLY | {"Body": "skip"}, signature)
    assert not validator.validate(WEBHOOK, REPLY | {"NumMedia": "0"}, signature)


def test_twilio_signature_fails_for_http_instead_of_https() -> None:
    validator = RequestValidator(AUTH_TOKEN)
    signature = validator.compute_signature(WEBHOOK, REPLY)
    assert not validator.validate(WEBHOOK.replace("https://", "http://"), REPLY, signature)


def test_twilio_signature_fails_for_another_auth_token() -> None:
    signature = RequestValidator("another-token").compute_signature(WEBHOOK, REPLY)
    assert not RequestValidator(AUTH_TOKEN).validate(WEBHOOK, REPLY, signature)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_retried_not_failed_for_good(status: int) -> None:
    error = delivery_error(
        TwilioRestException(status, "https://api.twilio.com/x", msg="Authenticate", code=20003)
    )
    assert isinstance(error, RetryableDeliveryError)
    assert "TWILIO_AUTH_TOKEN" in str(error)


def test_every_create_asks_for_receipts_at_the_public_url_and_sets_a_validity_period(
    twilio_mock_url: str,
) -> None:
    client, http = make_client(twilio_mock_url)
    text = replace(_text(), deadline=NOW + timedelta(hours=2))
    TwilioSender(client, FROM, "https://hearth.example/").send(text, NOW)
    sent = http._test_only_last_request.data
    callback = urlsplit(sent["StatusCallback"])
    assert (callback.scheme, callback.netloc, callback.path) == (
        "https", "hearth.example", "/sms/status")  # fmt: skip
    assert parse_qs(callback.query) == {"event": [text.event_id]}
    assert sent["ValidityPeriod"] == 7200


@pytest.mark.parametrize(
    ("left", "period"),
    [(timedelta(hours=20), 36_000), (timedelta(seconds=90), 90), (timedelta(seconds=-5), 1)],
)
def test_the_validity_period_stays_within_twilio_s_bounds(left: timedelta, period: int) -> None:
    assert validity_period(NOW + left, NOW) == period


def test_the_lookup_lists_messages_to_the_number_as_the_spec_says(twilio_mock_url: str) -> None:
    # Prism checks the request against Twilio's spec and answers its example page, whose
    # message is not ours: not sent, after both reads.
    client, http = make_client(twilio_mock_url)
    since = datetime(2026, 11, 25, 21, 0, tzinfo=UTC)
    found = TwilioSender(client, FROM).lookup(_text(), since)
    assert found is Lookup.NOT_SENT
    path = f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    first, *_ = http.asked
    assert first == ("GET", path, {"To": TO, "DateSent>": "2026-11-25T20:55:00Z", "PageSize": 100})
    assert ("GET", path, {"To": TO, "PageSize": 100}) in http.asked  # the queued ones too
