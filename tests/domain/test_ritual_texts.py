"""Which texts a couple's rituals send, rendered, and which of them cost too many segments."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.config import load_couple_file
from service.domain.segments import cost, normalise_body, segments
from service.domain.sends import long_texts, planned_sends, ritual_texts
from tests.domain.builders import couple, utc

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "config" / "couples").glob("*.yaml"))
LONG = "x" * 150  # GSM-7: with a name it passes 160, and with an emoji in a name 134
MOON_SAM = [{"name": "Alex", "phone": "+15550000001"}, {"name": "Sam 🌙", "phone": "+15550000002"}]


def test_ritual_texts_cover_prompt_each_reminder_and_the_planners_reminder() -> None:
    c = couple({"kind": "date_night", "remind": ["2d", "3h"]})
    labels = {(t.partner, t.label) for t in ritual_texts(c)}
    assert labels == {
        (p, label)
        for p in ("alex", "sam")
        for label in (
            "prompt",
            "reminder-2d",
            "reminder-2d as planner",
            "reminder-3h",
            "reminder-3h as planner",
        )
    }


def test_ritual_texts_fill_the_names_and_the_rules_time() -> None:
    c = couple({"kind": "date_night", "schedule": "every other friday at 19:30", "remind": ["2d"]})
    to_sam = {t.label: t.body for t in ritual_texts(c) if t.partner == "sam"}
    assert to_sam["reminder-2d"] == (
        "Date night with Alex is in 2 days (19:30). Alex is planning this one."
    )
    assert to_sam["reminder-2d as planner"].startswith(
        "Date night with Alex is in 2 days (19:30) and it's your turn to plan, Sam."
    )


def test_rituals_without_sms_or_disabled_send_no_texts() -> None:
    c = couple(
        {"kind": "check_in", "enabled": False},
        {"kind": "custom", "schedule": "every day at 08:00", "channels": ["calendar"]},
    )
    assert ritual_texts(c) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_planned_send_is_one_of_the_ritual_texts(path: Path) -> None:
    # {time} is the partner's local start in a send and the rule's time here: only digits.
    def shape(ritual: str, partner: str, body: str) -> tuple[str, str, str]:
        return ritual, partner, re.sub(r"\d\d:\d\d", "HH:MM", body)

    c = load_couple_file(path)
    texts = {shape(t.ritual, t.partner, t.body) for t in ritual_texts(c)}
    sends = planned_sends(c, utc(2026, 3, 1), utc(2026, 4, 15))
    assert sends
    assert {shape(s.ritual, s.partner, s.body) for s in sends} <= texts


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_the_example_couples_have_no_long_texts(path: Path) -> None:
    assert long_texts(load_couple_file(path)) == []


def test_an_emoji_in_a_name_makes_a_long_reminder_ucs2_and_long() -> None:
    c = couple(
        {"kind": "date_night", "remind": ["2d"], "texts": {"reminder": "{other}: " + LONG}},
        partners=MOON_SAM,
    )
    [long] = long_texts(c)
    assert (long.text.ritual, long.text.label, long.text.partner) == (
        "date_night",
        "reminder-2d",
        "alex",
    )
    assert (long.cost.segments, long.cost.encoding, long.cost.culprit) == (3, "UCS-2", "🌙")


def test_a_long_gsm7_text_counts_after_normalisation() -> None:
    # The euro sign is a GSM-7 extension character, two septets: 200 of them take three
    # segments. The curly quotes would make the text UCS-2 (four) unless normalised first,
    # as the senders do.
    c = couple({"kind": "check_in", "texts": {"prompt": "\u201c" + "€" * 200 + "\u201d"}})
    found = long_texts(c)
    assert {(t.text.partner, t.cost.segments, t.cost.encoding) for t in found} == {
        ("alex", 3, "GSM-7"),
        ("sam", 3, "GSM-7"),
    }


def test_two_segments_is_within_the_limit() -> None:
    c = couple({"kind": "check_in", "texts": {"prompt": "{partner} " + "z" * 290}})
    assert long_texts(c) == []


@given(st.text(max_size=400))
def test_cost_agrees_with_segments_and_names_a_ucs2_culprit(body: str) -> None:
    found = cost(normalise_body(body))
    assert found.segments == segments(normalise_body(body))
    assert (found.encoding == "UCS-2") == (found.culprit is not None)
    if found.culprit is not None:
        assert found.culprit in normalise_body(body)
