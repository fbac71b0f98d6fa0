from datetime import timedelta

import pytest

from service.domain.couples import build_couple
from service.domain.errors import CoupleInvalid
from service.domain.kinds import KIND_DEFAULTS, Channel, RitualKind, Who
from service.domain.texts import DEFAULT_TEXTS, render
from tests.domain.builders import couple

PARTNERS = [{"name": "Alex", "phone": "+15550000001"}, {"name": "Sam", "phone": "+15550000002"}]


def _problems(data: dict[str, object]) -> dict[str, str]:
    with pytest.raises(CoupleInvalid) as caught:
        build_couple(data)
    return {p.dotted_path: p.message for p in caught.value.problems}


def test_every_kind_loads_from_its_kind_alone_with_defaults() -> None:
    kinds = [k for k in RitualKind if k is not RitualKind.CUSTOM]
    c = couple(*({"kind": k.value} for k in kinds))
    for ritual in c.rituals:
        defaults = KIND_DEFAULTS[ritual.kind]
        assert ritual.id == ritual.kind.value
        assert ritual.recurrence.text == defaults.schedule
        assert ritual.duration == defaults.duration
        assert ritual.channels == defaults.channels
    assert c.ritual("date_night").remind == (timedelta(days=2), timedelta(hours=3))
    assert c.ritual("date_night").who is Who.ALTERNATING
    assert c.ritual("gratitude").partner_local
    assert Channel.CALENDAR in c.ritual("phone_free").channels


def test_custom_kind_needs_a_schedule() -> None:
    problems = _problems(
        {"couple": "c", "timezone": "UTC", "partners": PARTNERS, "rituals": [{"kind": "custom"}]}
    )
    assert "custom ritual needs a `schedule`" in problems["rituals[0]"]


def test_all_problems_of_a_couple_are_reported_at_once() -> None:
    problems = _problems(
        {
            "couple": "c",
            "timezone": "Mars/Olympus",
            "partners": [{"name": "Alex", "phone": "555"}],
            "rituals": [
                {"kind": "chek_in"},
                {"kind": "date_night", "schedule": "every othr friday at 19:30"},
                {"kind": "check_in", "remind": ["2x"], "colour": "red"},
                {"kind": "check_in"},
            ],
        }
    )
    assert problems["timezone"].startswith("unknown time zone 'Mars/Olympus'")
    assert "E.164" in problems["partners[0].phone"]
    assert "exactly two partners" in problems["partners[1]"]
    assert problems["rituals[0].kind"] == "unknown kind 'chek_in' — did you mean 'check_in'?"
    assert "did you mean 'every other friday at 19:30'" in problems["rituals[1].schedule"]
    assert "'2x' is not a duration" in problems["rituals[2].remind[0]"]
    assert problems["rituals[2].colour"] == "unknown key 'colour'"
    assert "already the id of rituals[2]" in problems["rituals[3].id"]
    # A bad kind does not also complain about every field the kind would have filled.
    assert not any(
        path.startswith("rituals[0].") and path != "rituals[0].kind" for path in problems
    )


@pytest.mark.parametrize(
    ("ritual", "path", "needle"),
    [
        ({"kind": "check_in", "partner_local": True}, "rituals[0].partner_local", "who: each"),
        (
            {"kind": "check_in", "start": "2026-05-02", "end": "2026-05-01"},
            "rituals[0].end",
            "before it starts",
        ),
        (
            {"kind": "check_in", "texts": {"prompt": "Hi {partnr}"}},
            "rituals[0].texts.prompt",
            "unknown placeholder {partnr}",
        ),
        (
            {"kind": "check_in", "texts": {"prompt": "Hi {planner}"}},
            "rituals[0].texts.prompt",
            "alternating",
        ),
        (
            {"kind": "check_in", "texts": {"prompt": "x" * 330}},
            "rituals[0].texts.prompt",
            "too long",
        ),
        (
            {"kind": "check_in", "schedule": "every day at 21:00", "rrule": "FREQ=DAILY;BYHOUR=1"},
            "rituals[0]",
            "not both",
        ),
        ({"kind": "custom", "rrule": "FREQ=DAILY"}, "rituals[0].rrule", "no time of day"),
        (
            {"kind": "check_in", "remind": ["1h"], "channels": ["calendar"]},
            "rituals[0].remind",
            "add `sms`",
        ),
        (
            {"kind": "check_in", "timezone": "Europe/Berln"},
            "rituals[0].timezone",
            "did you mean 'Europe/Berlin'",
        ),
        ({"kind": "check_in", "id": "Check In"}, "rituals[0].id", "lower-case"),
        (
            {"kind": "check_in", "shedule": "daily at 9:00"},
            "rituals[0].shedule",
            "did you mean 'schedule'",
        ),
    ],
)
def test_ritual_problems_name_their_field(
    ritual: dict[str, object], path: str, needle: str
) -> None:
    problems = _problems(
        {"couple": "c", "timezone": "UTC", "partners": PARTNERS, "rituals": [ritual]}
    )
    assert needle in problems[path], problems


def test_partners_must_differ_in_name_and_phone() -> None:
    problems = _problems(
        {
            "couple": "c",
            "timezone": "UTC",
            "partners": [
                {"name": "Alex", "phone": "+15550000001"},
                {"name": "alex", "phone": "+15550000001"},
            ],
            "rituals": [],
        }
    )
    assert "both partners are called" in problems["partners[1].name"]
    assert "same phone" in problems["partners[1].phone"]


def test_quiet_hours_must_be_a_window() -> None:
    partners = [{"name": "Alex", "phone": "+15550000001", "quiet_hours": "22:30"}, PARTNERS[1]]
    problems = _problems({"couple": "c", "timezone": "UTC", "partners": partners, "rituals": []})
    assert "not a window" in problems["partners[0].quiet_hours"]


def test_default_texts_render_short_single_segment_gsm7_messages() -> None:
    gsm7 = set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    )
    for kind, texts in DEFAULT_TEXTS.items():
        for which in ("prompt", "reminder", "planner_reminder"):
            template = getattr(texts, which)
            if not template:
                continue
            body = render(
                template,
                partner="Alexandra",
                other="Jonathan",
                planner="Alexandra",
                lead="in 2 days",
                time="19:30",
            )
            assert set(body) <= gsm7, (kind, which, set(body) - gsm7)
            assert len(body) <= 160, (kind, which, len(body))
