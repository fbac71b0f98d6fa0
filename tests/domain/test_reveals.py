"""Both answer, then both see: which rituals may reveal, the texts, and the cut."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain import confirmations as say
from service.domain.couples import build_couple
from service.domain.errors import CoupleInvalid
from service.domain.events import Purpose, PurposeKind, SendId
from service.domain.occurrences import find_occurrence
from service.domain.reveals import REVEAL_SEGMENTS, Answer, find_reveal, reveal_body, reveal_sends
from service.domain.segments import normalise_body, segments
from tests.domain.builders import couple, utc

PARTNERS = [{"name": "Alex", "phone": "+15550000001"}, {"name": "Sam", "phone": "+15550000002"}]
OCC = "alex-sam/check_in/20260302T2100"
REVEALING = couple({"kind": "check_in", "reveal": True, "schedule": "every day at 21:00"})


def _problems(*rituals: dict[str, object]) -> dict[str, str]:
    data = {"couple": "a-b", "timezone": "UTC", "partners": PARTNERS, "rituals": list(rituals)}
    with pytest.raises(CoupleInvalid) as caught:
        build_couple(data)
    return {p.dotted_path: p.message for p in caught.value.problems}


@pytest.mark.parametrize("kind", ["check_in", "listening", "touch_map", "conversation", "growth"])
def test_rituals_that_ask_a_question_may_reveal(kind: str) -> None:
    assert couple({"kind": kind, "reveal": True}).rituals[0].reveal


def test_reveal_is_off_unless_the_file_says_so() -> None:
    assert not couple({"kind": "check_in"}).rituals[0].reveal


@pytest.mark.parametrize("kind", ["date_night", "phone_free", "gratitude", "affection"])
def test_reveal_on_a_ritual_without_answers_is_an_error_naming_the_field(kind: str) -> None:
    problems = _problems({"kind": kind, "reveal": True})
    message = problems["rituals[0].reveal"]
    assert "only rituals that ask a question" in message
    assert "check_in" in message


def test_reveal_needs_one_shared_occurrence_and_texts() -> None:
    local = {"kind": "custom", "schedule": "every day at 9:00", "who": "each",
             "partner_local": True, "reveal": True}  # fmt: skip
    assert "partner-local" in _problems(local)["rituals[0].reveal"]
    quiet = {"kind": "conversation", "channels": ["calendar"], "remind": [], "reveal": True}
    assert "sms" in _problems(quiet)["rituals[0].reveal"]


def _answers(alex: str = "Work was long", sam: str = "Saw the sea") -> dict[str, Answer]:
    return {
        "alex": Answer(alex, utc(2026, 3, 3, 2, 5)),
        "sam": Answer(sam, utc(2026, 3, 3, 2, 40)),
    }


def test_each_partner_gets_the_others_answer_due_at_the_second_answer() -> None:
    occ = find_occurrence(REVEALING, OCC)
    assert occ is not None
    sends = reveal_sends(REVEALING, occ, _answers())
    assert [(s.event_id, s.body) for s in sends] == [
        (f"{OCC}/reveal/alex", "Sam's check-in: Saw the sea"),
        (f"{OCC}/reveal/sam", "Alex's check-in: Work was long"),
    ]
    assert {s.due.astimezone(UTC) for s in sends} == {utc(2026, 3, 3, 2, 40)}
    assert all(s.purpose.kind is PurposeKind.REVEAL for s in sends)


def test_nothing_is_revealed_before_both_answered() -> None:
    occ = find_occurrence(REVEALING, OCC)
    assert occ is not None
    one = {"alex": Answer("Work was long", utc(2026, 3, 3, 2, 5))}
    assert reveal_sends(REVEALING, occ, one) == []
    assert reveal_sends(REVEALING, occ, _answers(sam="  ")) == []
    plain = couple({"kind": "check_in", "schedule": "every day at 21:00"})
    plain_occ = find_occurrence(plain, OCC)
    assert plain_occ is not None
    assert reveal_sends(plain, plain_occ, _answers()) == []


def test_a_reveal_is_held_past_the_recipients_quiet_hours() -> None:
    partners = [{**PARTNERS[0], "quiet_hours": "21:30-07:00"}, PARTNERS[1]]
    c = couple({"kind": "check_in", "reveal": True, "schedule": "every day at 21:00"},
               partners=partners)  # fmt: skip
    occ = find_occurrence(c, OCC)
    assert occ is not None
    alex, sam = reveal_sends(c, occ, _answers())  # the second answer: 21:40 in New York
    assert alex.at == alex.due.replace(hour=7, minute=0) + timedelta(days=1)
    assert sam.at == sam.due


def test_find_reveal_rebuilds_the_send_and_its_resend_and_nothing_else() -> None:
    send = SendId(OCC, Purpose.reveal(), "sam")
    found = find_reveal(REVEALING, send, _answers())
    assert found is not None
    assert found.body == "Alex's check-in: Work was long"
    again = find_reveal(REVEALING, SendId(OCC, Purpose.reveal().again(), "sam"), _answers())
    assert again is not None
    assert (again.event_id, again.body) == (f"{OCC}/reveal~resend/sam", found.body)
    assert find_reveal(REVEALING, send, {}) is None
    assert find_reveal(REVEALING, SendId(OCC, Purpose.prompt(), "sam"), _answers()) is None


def test_a_long_answer_is_cut_to_two_segments_with_the_dashboard_note() -> None:
    answer = "We walked to the old bridge and talked about " + "the summer plans " * 30
    body = reveal_body("Sam", "check-in", answer)
    assert segments(body) == REVEAL_SEGMENTS
    assert body.startswith("Sam's check-in: We walked to the old bridge")
    assert body.endswith(say.REVEAL_CUT)
    kept = body.removesuffix(say.REVEAL_CUT).removeprefix("Sam's check-in: ")
    assert answer.startswith(kept)
    assert answer[len(kept)] == " "  # cut at a word


def test_an_answer_that_fits_is_whole_and_normalised() -> None:
    body = reveal_body("Sam", "check-in", "It’s been “good”")
    assert body == "Sam's check-in: It's been \"good\""


def test_an_emoji_answer_is_cut_by_ucs2_segments() -> None:
    body = reveal_body("Sam", "check-in", "🌊 " + "sea and sky " * 40)
    assert segments(body) <= REVEAL_SEGMENTS
    assert body.endswith(say.REVEAL_CUT)


@given(
    answer=st.text(min_size=0, max_size=600),
    other=st.text(st.characters(categories=["L"]), min_size=1, max_size=30),
)
def test_every_reveal_fits_two_segments_and_keeps_a_prefix_of_the_answer(
    answer: str, other: str
) -> None:
    body = reveal_body(other, "check-in", answer)
    assert segments(body) <= REVEAL_SEGMENTS or len(other) > 60
    head = normalise_body(say.revealed(other, "check-in", ""))
    assert body.startswith(head)
    kept = body.removeprefix(head).removesuffix(say.REVEAL_CUT).rstrip()
    assert normalise_body(answer.strip()).startswith(kept)
