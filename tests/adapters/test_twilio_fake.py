"""The Twilio fake (tests/twilio_fake.py) driven by the real ``twilio`` library.

Every request goes through ``RedirectedHttpClient``, the same client the app builds for
``HEARTH_TWILIO_API_URL``, so what works here works for a worker pointed at the fake.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import pytest
import requests

# twilio ships no type information (no py.typed); its names are Any to mypy.
from twilio.base import serialize  # type: ignore[import-untyped,unused-ignore]
from twilio.base.exceptions import (  # type: ignore[import-untyped,unused-ignore]
    TwilioException,
    TwilioRestException,
)
from twilio.request_validator import (  # type: ignore[import-untyped,unused-ignore]
    RequestValidator,
)
from twilio.rest import Client  # type: ignore[import-untyped,unused-ignore]

from service.senders import AmbiguousDeliveryError, Outgoing
from service.senders.twilio import RedirectedHttpClient, TwilioSender
from tests.twilio_fake import TwilioFake

TO = "+4915112340001"
OTHER = "+4915112340002"
FROM = "+15005550006"
RFC_2822 = re.compile(r"[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000")


def _client(fake: TwilioFake, *, timeout: float = 5.0) -> Any:
    http_client = RedirectedHttpClient(fake.url, timeout=timeout)
    return Client(fake.account_sid, fake.auth_token, http_client=http_client)


@dataclass(frozen=True)
class Received:
    """One request the callback receiver got."""

    url: str
    form: dict[str, str]
    signature: str | None


class CallbackReceiver:
    """An HTTP server on 127.0.0.1 that records every POST and answers 200."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        lock = threading.Lock()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                url = f"http://{self.headers['Host']}{self.path}"
                with lock:
                    received.append(Received(url, form, self.headers.get("X-Twilio-Signature")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def receiver() -> Iterator[CallbackReceiver]:
    server = CallbackReceiver()
    try:
        yield server
    finally:
        server.stop()


def test_a_created_message_is_fetched_and_listed_as_twilio_shapes_it(
    twilio_fake: TwilioFake,
) -> None:
    client = _client(twilio_fake)
    created = client.messages.create(to=TO, from_=FROM, body="Check-in time.")
    assert re.fullmatch(r"SM[0-9a-f]{32}", created.sid)
    assert (created.status, created.direction, created.date_sent) == (
        "queued",
        "outbound-api",
        None,
    )
    assert (created.account_sid, created.num_segments, created.price) == (
        twilio_fake.account_sid,
        "1",
        None,
    )

    fetched = client.messages(created.sid).fetch()
    assert (fetched.to, fetched.from_, fetched.body) == (TO, FROM, "Check-in time.")
    assert fetched.date_created == created.date_created
    assert [m.sid for m in client.messages.list(to=TO)] == [created.sid]
    assert client.messages.list(to=OTHER) == []
    assert client.messages.list(from_=FROM)[0].sid == created.sid

    raw = requests.get(
        f"{twilio_fake.url}{created.uri}",
        auth=(twilio_fake.account_sid, twilio_fake.auth_token),
        timeout=5,
    ).json()
    assert RFC_2822.fullmatch(raw["date_created"])
    assert raw["error_code"] is None
    assert raw["messaging_service_sid"] is None
    [stored] = twilio_fake.messages
    assert stored.received_at == twilio_fake.creates[0].received_at


def test_an_unknown_message_sid_is_twilios_20404(twilio_fake: TwilioFake) -> None:
    with pytest.raises(TwilioRestException) as raised:
        _client(twilio_fake).messages("SM" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (404, 20404)


def test_the_list_is_newest_first_and_pages_follow_the_next_page_uri(
    twilio_fake: TwilioFake,
) -> None:
    client = _client(twilio_fake)
    sids = [client.messages.create(to=TO, from_=FROM, body=f"text {i}").sid for i in range(5)]
    newest_first = sids[::-1]

    assert [m.sid for m in client.messages.list(limit=5, page_size=2)] == newest_first
    assert [m.sid for m in client.messages.list(limit=3, page_size=2)] == newest_first[:3]
    assert [m.sid for m in client.messages.stream(page_size=2)] == newest_first
    assert [m.sid for m in client.messages.list(limit=2)] == newest_first[:2]

    # The next page continues after the last sid it saw, whatever was created meanwhile.
    first = client.messages.page(page_size=2)
    client.messages.create(to=TO, from_=FROM, body="created while paging")
    second = first.next_page()
    assert [m.sid for m in second] == newest_first[2:4]


def test_a_date_sent_filter_leaves_out_messages_not_sent_yet(twilio_fake: TwilioFake) -> None:
    client = _client(twilio_fake)
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    sent = client.messages.create(to=TO, from_=FROM, body="goes out").sid
    queued = client.messages.create(to=TO, from_=FROM, body="still queued").sid
    twilio_fake.advance(sent)

    assert [m.sid for m in client.messages.list(to=TO)] == [queued, sent]
    assert [m.sid for m in client.messages.list(to=TO, date_sent_after=since)] == [sent]
    sent_on = twilio_fake.message(sent).date_sent
    assert sent_on is not None
    assert [m.sid for m in client.messages.list(date_sent=sent_on.date())] == [sent]
    later = since + timedelta(hours=1)
    assert client.messages.list(date_sent_after=later) == []
    assert [m.sid for m in client.messages.list(date_sent_before=later)] == [sent]


def test_the_library_writes_date_sent_bounds_as_utc_seconds_without_converting_the_zone() -> None:
    # What the fake parses: "%Y-%m-%dT%H:%M:%SZ" from the datetime's own fields, so an aware
    # datetime outside UTC is sent an offset wrong. Callers must convert to UTC first.
    berlin = datetime(2026, 11, 25, 21, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    assert serialize.iso8601_datetime(berlin) == "2026-11-25T21:00:00Z"
    assert serialize.iso8601_datetime(berlin.astimezone(UTC)) == "2026-11-25T20:00:00Z"


def test_a_hang_after_accepting_is_a_read_timeout_yet_the_message_is_listed(
    twilio_fake: TwilioFake,
) -> None:
    twilio_fake.hang_after_accepting(seconds=10)
    with pytest.raises(requests.ReadTimeout):
        _client(twilio_fake, timeout=0.5).messages.create(to=TO, from_=FROM, body="ambiguous")

    [listed] = _client(twilio_fake).messages.list(to=TO)
    assert (listed.body, listed.status) == ("ambiguous", "queued")
    assert [c.sid for c in twilio_fake.creates] == [listed.sid]


def test_the_app_sender_calls_a_hang_after_accepting_ambiguous(twilio_fake: TwilioFake) -> None:
    text = Outgoing(
        event_id="alex-sam/check_in/20261125T2100/prompt/alex",
        occurrence_id="alex-sam/check_in/20261125T2100",
        couple="alex-sam",
        ritual="check_in",
        partner="alex",
        to=TO,
        body="Check-in time.",
    )
    sender = TwilioSender(_client(twilio_fake, timeout=0.5), FROM)
    sid = sender.send(text, datetime.now(UTC))
    assert twilio_fake.message(sid).body == "Check-in time."

    twilio_fake.hang_after_accepting(seconds=10)
    with pytest.raises(AmbiguousDeliveryError):
        sender.send(text, datetime.now(UTC))
    assert len(twilio_fake.messages) == 2


def test_a_5xx_after_accepting_raises_yet_the_message_exists(twilio_fake: TwilioFake) -> None:
    client = _client(twilio_fake)
    twilio_fake.fail_next(500, 20500, accepted=True)
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=FROM, body="taken")
    assert (raised.value.status, raised.value.code) == (500, 20500)
    [stored] = twilio_fake.messages
    assert [m.sid for m in client.messages.list(to=TO)] == [stored.sid]

    twilio_fake.fail_next(429, 20429)
    with pytest.raises(TwilioRestException) as raised:
        client.messages.create(to=TO, from_=FROM, body="not taken")
    assert (raised.value.status, raised.value.code) == (429, 20429)
    assert len(twilio_fake.messages) == 1
    assert client.messages.create(to=TO, from_=FROM, body="the script is spent").status == "queued"


@pytest.mark.parametrize("code", [21211, 21614, 21610])
def test_a_refused_number_is_answered_with_its_code_and_nothing_is_stored(
    twilio_fake: TwilioFake, code: int
) -> None:
    twilio_fake.refuse(TO, code)
    with pytest.raises(TwilioRestException) as raised:
        _client(twilio_fake).messages.create(to=TO, from_=FROM, body="refused")
    assert (raised.value.status, raised.value.code) == (400, code)
    assert twilio_fake.messages == []
    [create] = twilio_fake.creates
    assert (create.form["To"], create.status, create.code, create.sid) == (TO, 400, code, None)


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"to": "12345"}, 21211),
        ({"body": ""}, 21602),
        ({"from_": "not-a-number"}, 21212),
        ({"validity_period": 0}, 90007),
        ({"validity_period": 36001}, 90007),
        ({"status_callback": "ftp://example.com/x"}, 21609),
    ],
)
def test_a_create_twilio_would_reject_is_a_400_with_its_code(
    twilio_fake: TwilioFake, fields: dict[str, object], code: int
) -> None:
    twilio_fake.hang_after_accepting(seconds=10)  # untouched: validation comes first
    arguments: dict[str, object] = {"to": TO, "from_": FROM, "body": "hello"} | fields
    with pytest.raises(TwilioRestException) as raised:
        _client(twilio_fake).messages.create(**arguments)
    assert (raised.value.status, raised.value.code) == (400, code)
    assert twilio_fake.messages == []


def test_advance_posts_signed_callbacks_for_sent_and_the_outcome(
    twilio_fake: TwilioFake, receiver: CallbackReceiver
) -> None:
    client = _client(twilio_fake)
    callback_url = f"{receiver.url}/twilio/status?couple=alex-sam"
    delivered = client.messages.create(
        to=TO, from_=FROM, body="one", status_callback=callback_url
    ).sid
    twilio_fake.set_outcome(OTHER, "undelivered", 30003)
    undelivered = client.messages.create(
        to=OTHER, from_=FROM, body="two", status_callback=callback_url
    ).sid

    posted = twilio_fake.advance()

    assert [(p.form["MessageSid"], p.form["MessageStatus"]) for p in posted] == [
        (delivered, "sent"),
        (delivered, "delivered"),
        (undelivered, "sent"),
        (undelivered, "undelivered"),
    ]
    assert [p.status for p in posted] == [200] * 4
    assert receiver.received[1].form == {
        "MessageSid": delivered,
        "SmsSid": delivered,
        "AccountSid": twilio_fake.account_sid,
        "From": FROM,
        "To": TO,
        "MessageStatus": "delivered",
        "SmsStatus": "delivered",
        "ApiVersion": "2010-04-01",
    }
    assert receiver.received[3].form["ErrorCode"] == "30003"
    validator = RequestValidator(twilio_fake.auth_token)
    for request in receiver.received:
        assert request.url == callback_url
        assert validator.validate(request.url, request.form, request.signature)

    assert twilio_fake.message(delivered).status == "delivered"
    assert twilio_fake.message(undelivered).error_code == 30003
    assert client.messages(undelivered).fetch().date_sent is not None
    assert twilio_fake.advance() == []  # nothing is queued any more


def test_a_callback_by_hand_can_be_forged_and_changes_nothing(
    twilio_fake: TwilioFake, receiver: CallbackReceiver
) -> None:
    callback_url = f"{receiver.url}/twilio/status"
    sid = (
        _client(twilio_fake)
        .messages.create(to=TO, from_=FROM, body="x", status_callback=callback_url)
        .sid
    )
    assert twilio_fake.callback(sid, "delivered", signature="forged") == 200
    assert twilio_fake.callback(sid, "failed", 30007) == 200

    forged, failed = receiver.received
    validator = RequestValidator(twilio_fake.auth_token)
    assert not validator.validate(forged.url, forged.form, forged.signature)
    assert validator.validate(failed.url, failed.form, failed.signature)
    assert failed.form["ErrorCode"] == "30007"
    assert twilio_fake.message(sid).status == "queued"


def test_a_callback_nobody_answers_is_recorded_not_raised(
    twilio_fake: TwilioFake, receiver: CallbackReceiver
) -> None:
    dead_url = f"{receiver.url}/status"
    receiver.stop()
    sid = (
        _client(twilio_fake)
        .messages.create(to=TO, from_=FROM, body="x", status_callback=dead_url)
        .sid
    )
    assert twilio_fake.callback(sid, "sent") == 0
    [post] = twilio_fake.callbacks_posted
    assert post.status == 0
    assert post.error is not None


def test_a_messaging_service_text_is_accepted_and_calls_back_the_services_url(
    twilio_fake: TwilioFake, receiver: CallbackReceiver
) -> None:
    service = twilio_fake.add_messaging_service(
        status_callback=f"{receiver.url}/status", sender="+15005550001"
    )
    client = _client(twilio_fake)
    created = client.messages.create(to=TO, messaging_service_sid=service, body="hi")
    assert (created.status, created.from_, created.messaging_service_sid) == (
        "accepted",
        None,
        service,
    )
    twilio_fake.advance()
    assert [r.form["MessageStatus"] for r in receiver.received] == ["sent", "delivered"]
    assert receiver.received[0].form["From"] == "+15005550001"
    assert receiver.received[0].form["MessagingServiceSid"] == service
    assert client.messages(created.sid).fetch().from_ == "+15005550001"


def test_wrong_credentials_are_twilios_401_and_another_account_is_not_found(
    twilio_fake: TwilioFake,
) -> None:
    http_client = RedirectedHttpClient(twilio_fake.url, timeout=5)
    intruder = Client(twilio_fake.account_sid, "wrong-token", http_client=http_client)
    with pytest.raises(TwilioRestException) as raised:
        intruder.messages("SM" + "0" * 32).fetch()
    assert (raised.value.status, raised.value.code) == (401, 20003)
    # A list answered with an error is the library's bare TwilioException, no status on it.
    with pytest.raises(TwilioException, match="Unable to fetch page") as listed:
        intruder.messages.list()
    assert not isinstance(listed.value, TwilioRestException)

    other_account = "AC" + "f" * 32
    answer = requests.get(
        f"{twilio_fake.url}/2010-04-01/Accounts/{other_account}/Messages.json",
        auth=(twilio_fake.account_sid, twilio_fake.auth_token),
        timeout=5,
    )
    assert (answer.status_code, answer.json()["code"]) == (404, 20404)


def test_the_account_number_and_messaging_service_answer_a_wiring_check(
    twilio_fake: TwilioFake,
) -> None:
    number_sid = twilio_fake.add_number(FROM, sms_url="https://old.example/sms")
    service_sid = twilio_fake.add_messaging_service(friendly_name="Hearth")
    client = _client(twilio_fake)

    account = client.api.v2010.accounts(twilio_fake.account_sid).fetch()
    assert (account.sid, account.status) == (twilio_fake.account_sid, "active")

    [number] = client.incoming_phone_numbers.list(phone_number=FROM)
    assert (number.sid, number.sms_url) == (number_sid, "https://old.example/sms")
    assert client.incoming_phone_numbers.list(phone_number=OTHER) == []
    updated = client.incoming_phone_numbers(number_sid).update(
        sms_url="https://hearth.example/sms",
        sms_method="POST",
        status_callback="https://hearth.example/status",
    )
    assert (updated.sms_url, updated.status_callback) == (
        "https://hearth.example/sms",
        "https://hearth.example/status",
    )
    [seeded] = twilio_fake.numbers
    assert seeded.sms_url == "https://hearth.example/sms"

    service = client.messaging.v1.services(service_sid).fetch()
    assert (service.friendly_name, service.use_inbound_webhook_on_number) == ("Hearth", False)
    service = client.messaging.v1.services(service_sid).update(
        inbound_request_url="https://hearth.example/sms",
        inbound_method="POST",
        status_callback="https://hearth.example/status",
        use_inbound_webhook_on_number=True,
    )
    assert (service.inbound_request_url, service.use_inbound_webhook_on_number) == (
        "https://hearth.example/sms",
        True,
    )
    assert service.date_updated is not None
    with pytest.raises(TwilioRestException) as raised:
        client.messaging.v1.services("MG" + "0" * 32).fetch()
    assert raised.value.status == 404
