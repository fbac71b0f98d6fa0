"""Both answer, then both see, and DONE yesterday, below HTTP: the reply handler and the send
path on a real SQLite log, real Redis for the schedule, the real console sender."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import pytest

from service.domain import confirmations as say
from service.domain.reveals import REVEAL_SEGMENTS
from service.domain.segments import segments
from service.sending import Outcome, SendRequest
from service.storage import make_engine, migrate
from tests.adapters.test_replies import ALEX, COUPLE, SAM, Rig, _rig
from tests.domain.builders import couple

if TYPE_CHECKING:
    from redis import Redis

NY = ZoneInfo("America/New_York")
REVEALING = couple(
    {"kind": "check_in", "schedule": "every day at 21:00", "reveal": True},
    {"kind": "listening", "schedule": "every saturday at 21:00"},
    timezone="America/New_York",
)
OCC = "alex-sam/check_in/20260302T2100"


@pytest.fixture
def rig(tmp_path: Path, redis_client: Redis) -> Iterator[Rig]:
    url = f"sqlite:///{tmp_path / 'hearth.db'}"
    migrate(url)
    engine = make_engine(url)
    try:
        r = _rig(engine, tmp_path, redis_client)
        assert REVEALING.id == COUPLE.id
        r.couples.by_id[REVEALING.id] = REVEALING
        yield r
    finally:
        engine.dispose()


def _ny(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=NY)


def _reveals_pending(rig: Rig) -> list[str]:
    return sorted(e for e, _ in rig.store.pending(REVEALING.id) if "/reveal/" in e)


def _send_reveals(rig: Rig) -> dict[str, Outcome]:
    """What the send path does with each scheduled reveal (as the worker would)."""
    return {
        event_id: rig.send_path.handle(SendRequest.parse(event_id, rig.clock.now())).outcome
        for event_id in _reveals_pending(rig)
    }


def _revealed(rig: Rig) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in rig.lines():
        if "/reveal/" in line["event_id"]:
            out.setdefault(line["event_id"], []).append(line["body"])
    return out


def _both_answer(rig: Rig, alex: str = "Long walk by the river", sam: str = "Saw the sea") -> str:
    rig.deliver("check_in", _ny(2, 20), _ny(2, 22))
    rig.clock.set(_ny(2, 21, 5))
    first = rig.text(ALEX, alex)
    assert first.outcome == "journal"
    assert _reveals_pending(rig) == []  # never before both answered
    rig.clock.set(_ny(2, 21, 20))
    sid = "SM" + "5" * 32
    second = rig.text(SAM, sam, sid=sid)
    assert second.outcome == "journal"
    return sid


def test_each_partner_gets_the_others_answer_once_after_both_answered(rig: Rig) -> None:
    sid = _both_answer(rig)
    rig.handler.handle(sid)  # the second answer delivered twice
    assert _reveals_pending(rig) == [f"{OCC}/reveal/alex", f"{OCC}/reveal/sam"]
    rig.clock.set(_ny(2, 21, 21))
    assert set(_send_reveals(rig).values()) == {Outcome.SENT}
    assert set(_send_reveals(rig).values()) == {Outcome.DONE_BEFORE}  # a redelivered message
    rig.handler.handle(sid)
    assert _revealed(rig) == {
        f"{OCC}/reveal/alex": ["Sam's check-in: Saw the sea"],
        f"{OCC}/reveal/sam": ["Alex's check-in: Long walk by the river"],
    }
    to = {line["event_id"]: line["to"] for line in rig.lines() if "/reveal/" in line["event_id"]}
    assert to == {f"{OCC}/reveal/alex": ALEX, f"{OCC}/reveal/sam": SAM}


def test_a_reveal_asked_for_before_both_answered_sends_nothing(rig: Rig) -> None:
    rig.deliver("check_in", _ny(2, 20), _ny(2, 22))
    rig.clock.set(_ny(2, 21, 5))
    rig.text(ALEX, "Long walk by the river")
    early = rig.send_path.handle(SendRequest.parse(f"{OCC}/reveal/sam", rig.clock.now()))
    assert early.outcome is Outcome.MISSED
    assert _revealed(rig) == {}


def test_a_done_without_words_reveals_nothing(rig: Rig) -> None:
    rig.deliver("check_in", _ny(2, 20), _ny(2, 22))
    rig.clock.set(_ny(2, 21, 5))
    rig.text(ALEX, "Long walk by the river")
    rig.text(SAM, "done")
    assert _reveals_pending(rig) == []


@pytest.mark.parametrize("leaving", ["STOP", "PAUSE 3d"])
def test_no_reveal_goes_to_an_opted_out_or_paused_partner(rig: Rig, leaving: str) -> None:
    _both_answer(rig)
    rig.text(ALEX, leaving)
    rig.clock.set(_ny(2, 21, 21))
    outcomes = _send_reveals(rig)
    assert outcomes == {f"{OCC}/reveal/alex": Outcome.MISSED, f"{OCC}/reveal/sam": Outcome.SENT}
    assert list(_revealed(rig)) == [f"{OCC}/reveal/sam"]


def test_no_reveal_goes_to_a_number_the_carrier_refused(rig: Rig) -> None:
    _both_answer(rig)
    rig.partners.set_unreachable(REVEALING.id, "sam", SAM, 21211, rig.clock.now())
    rig.clock.set(_ny(2, 21, 21))
    outcomes = _send_reveals(rig)
    assert outcomes == {f"{OCC}/reveal/alex": Outcome.SENT, f"{OCC}/reveal/sam": Outcome.MISSED}
    assert list(_revealed(rig)) == [f"{OCC}/reveal/alex"]


def test_a_long_answer_is_cut_with_a_note_that_the_whole_is_on_the_dashboard(rig: Rig) -> None:
    long = "We talked about the move and " + "what home means to each of us " * 12
    _both_answer(rig, alex=long)
    rig.clock.set(_ny(2, 21, 21))
    _send_reveals(rig)
    [body] = _revealed(rig)[f"{OCC}/reveal/sam"]
    assert body.startswith("Alex's check-in: We talked about the move")
    assert body.endswith(say.REVEAL_CUT)
    assert segments(body) == REVEAL_SEGMENTS
    [whole] = [e.note for e in rig.answers.journal(REVEALING.id, "alex")]
    assert whole == long.strip()  # the journal keeps every word


def test_done_yesterday_logs_yesterdays_check_in_and_names_the_date(rig: Rig) -> None:
    rig.deliver("check_in", _ny(2, 20), _ny(2, 22))
    rig.clock.set(_ny(3, 8))
    record = rig.text(ALEX, "DONE yesterday")
    assert record.occurrence_id == OCC
    assert rig.answer(record) == "Logged your check-in for Monday 2 Mar. Waiting on Sam's."
    assert rig.answers.of([OCC])[OCC].done_by == {"alex"}
    again = rig.text(ALEX, "done yesterday!")
    assert rig.answer(again) == say.already("check-in")


def test_done_yesterday_across_the_spring_forward_counts_elapsed_hours(rig: Rig) -> None:
    # Saturday 7 March 21:00 EST; 48 elapsed hours later is Monday 9 March 22:00 EDT.
    rig.deliver("listening", _ny(7, 20), _ny(7, 22))
    rig.clock.set(_ny(9, 21, 30))
    within = rig.text(ALEX, "#listening done yesterday")
    logged = "Logged your mirror listening for Saturday 7 Mar. Waiting on Sam's."
    assert rig.answer(within) == logged
    rig.clock.set(_ny(9, 22, 30))
    beyond = rig.text(SAM, "#Listening: Done, yesterday.")
    assert beyond.outcome == "too-old"
    assert rig.answer(beyond) == say.too_old("mirror listening", _ny(7, 21).date())
    occ = "alex-sam/listening/20260307T2100"
    assert rig.answers.of([occ])[occ].done_by == {"alex"}


def test_done_yesterday_beyond_48_hours_says_it_is_too_old(rig: Rig) -> None:
    rig.deliver("listening", _ny(7, 20), _ny(7, 22))
    rig.clock.set(_ny(11, 9))
    record = rig.text(ALEX, "done yesterday")
    assert record.outcome == "too-old"
    assert "too old to log" in (rig.answer(record) or "")
    assert "Saturday 7 Mar" in (rig.answer(record) or "")
