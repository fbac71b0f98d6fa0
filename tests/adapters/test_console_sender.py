import io
import json
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from service.senders import ConsoleSender, Outgoing, RetryableDeliveryError

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def _text(i: int = 0) -> Outgoing:
    return Outgoing(
        event_id=f"alex-sam/check_in/20261125T2100/prompt/alex#{i}",
        occurrence_id="alex-sam/check_in/20261125T2100",
        couple="alex-sam",
        ritual="check_in",
        partner="alex",
        to="+4915112340001",
        body="Hi Alex, check-in time.",
    )


def test_console_sender_prints_a_line_and_appends_the_outbox_record(tmp_path: Path) -> None:
    out = io.StringIO()
    outbox = tmp_path / "var" / "outbox.jsonl"
    provider_id = ConsoleSender(outbox, out).send(_text(), NOW)
    (record,) = [json.loads(line) for line in outbox.read_text().splitlines()]
    assert record == {
        "event_id": _text().event_id,
        "occurrence_id": "alex-sam/check_in/20261125T2100",
        "couple": "alex-sam",
        "ritual": "check_in",
        "partner": "alex",
        "to": "+4915112340001",
        "body": "Hi Alex, check-in time.",
        "sent_at": "2026-11-25T20:00:00+00:00",
        "id": provider_id,
    }
    assert out.getvalue() == "[sms to alex of alex-sam] Hi Alex, check-in time.\n"
    assert "+4915112340001" not in out.getvalue()  # phone numbers stay out of the console


def test_concurrent_sends_never_interleave_outbox_lines(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    sender = ConsoleSender(outbox, io.StringIO())

    def burst(n: int) -> None:
        for i in range(50):
            sender.send(_text(n * 100 + i), NOW)

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    lines = outbox.read_text().splitlines()
    assert len(lines) == 200
    assert len({json.loads(line)["event_id"] for line in lines}) == 200


def test_unwritable_outbox_is_a_retryable_delivery_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(RetryableDeliveryError, match="outbox"):
        ConsoleSender(blocker / "outbox.jsonl", io.StringIO()).send(_text(), NOW)
