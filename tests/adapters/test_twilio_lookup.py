"""``TwilioSender.lookup`` against the stateful fake of Twilio's Messages resource: after an
ambiguous failure, is the text in Twilio's record or not, and never a guess when it cannot
be read."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from twilio.rest import Client

from service.senders import AmbiguousDeliveryError, Lookup, Outgoing, SentBefore
from service.senders.twilio import RedirectedHttpClient, TwilioSender
from tests.twilio_fake import TwilioFake

FROM = "+15005550006"
TO = "+4915112340001"


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


def _sender(fake: TwilioFake, *, timeout: float = 5.0, token: str | None = None) -> TwilioSender:
    client = Client(fake.account_sid, token or fake.auth_token,
                    http_client=RedirectedHttpClient(fake.url, timeout=timeout))  # fmt: skip
    return TwilioSender(client, FROM, "https://hearth.example")


def _now() -> datetime:
    return datetime.now(UTC)


def test_a_timed_out_create_that_twilio_took_is_found_while_still_queued(
    twilio_fake: TwilioFake,
) -> None:
    twilio_fake.hang_after_accepting(seconds=3)
    sender = _sender(twilio_fake, timeout=0.5)
    claimed = _now()
    with pytest.raises(AmbiguousDeliveryError):
        sender.send(_text(), claimed)
    (message,) = twilio_fake.messages
    assert message.date_sent is None  # queued: a DateSent filter alone would miss it
    found = _sender(twilio_fake).lookup(_text(), claimed)
    assert found == SentBefore(message.sid)


def test_a_sent_message_is_found_and_the_body_is_matched_as_sent(
    twilio_fake: TwilioFake,
) -> None:
    sender = _sender(twilio_fake)
    claimed = _now()
    text = _text("It\u2019s check-in time \u2014 five minutes.")  # normalised on the wire
    sid = sender.send(text, claimed)
    twilio_fake.advance(sid)
    assert twilio_fake.message(sid).date_sent is not None
    assert sender.lookup(text, claimed) == SentBefore(sid)


def test_nothing_like_it_is_not_sent(twilio_fake: TwilioFake) -> None:
    sender = _sender(twilio_fake)
    claimed = _now()
    sender.send(_text("Another ritual's words"), claimed)  # same number, other body
    sender.send(_text(to="+4915112340002"), claimed)  # same body, other number
    assert sender.lookup(_text(), claimed) is Lookup.NOT_SENT


def test_a_message_from_before_the_claim_does_not_count(twilio_fake: TwilioFake) -> None:
    sender = _sender(twilio_fake)
    sid = sender.send(_text(), _now())
    twilio_fake.advance(sid)
    # Yesterday's identical words are not today's text.
    assert sender.lookup(_text(), _now() + timedelta(days=1)) is Lookup.NOT_SENT


def test_an_unreadable_record_is_unknown_never_not_sent(twilio_fake: TwilioFake) -> None:
    wrong_token = _sender(twilio_fake, token="not-the-token")
    assert wrong_token.lookup(_text(), _now()) is Lookup.UNKNOWN
    url = twilio_fake.url
    twilio_fake.stop()
    gone = TwilioSender(Client("AC" + "0" * 32, "t", http_client=RedirectedHttpClient(url)), FROM)
    assert gone.lookup(_text(), _now()) is Lookup.UNKNOWN
    assert gone.lookup(replace(_text(), to=""), _now()) is Lookup.UNKNOWN
