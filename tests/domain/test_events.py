"""Event ids and purposes: one spelling each, parsed back to the same value; one deadline
policy per purpose."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.domain.deadlines import Grace, deadline
from service.domain.events import (
    ConfirmationId,
    EventIdInvalid,
    LaterId,
    LaterKind,
    Purpose,
    PurposeKind,
    SendId,
    parse_event_id,
    parse_send_id,
    week_occurrence_id,
)
from service.domain.sends import planned_sends
from tests.domain.builders import couple, utc

_instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31), timezones=st.just(UTC)
)
_leads = st.integers(min_value=1, max_value=366 * 24 * 60).map(lambda m: timedelta(minutes=m))
_purposes = st.one_of(
    st.builds(Purpose.prompt, st.none() | _instants),
    st.builds(Purpose.reminder, _leads, st.none() | _instants),
    st.builds(Purpose.snooze, _instants),
    st.builds(Purpose.fire, _instants),
    st.just(Purpose.reveal()),
    st.just(Purpose.reveal().again()),
)
_slugs = st.from_regex(r"[a-z][a-z0-9-]{0,20}", fullmatch=True)


@given(
    couple_id=_slugs,
    ritual=_slugs,
    wall=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    owner=st.none() | _slugs,
    purpose=_purposes,
    partner=_slugs,
)
def test_every_send_id_parses_back_to_itself(
    couple_id: str,
    ritual: str,
    wall: datetime,
    owner: str | None,
    purpose: Purpose,
    partner: str,
) -> None:
    occurrence = f"{couple_id}/{ritual}/{wall:%Y%m%dT%H%M}" + (f"/{owner}" if owner else "")
    send = SendId(occurrence, purpose, partner)
    assert parse_event_id(str(send)) == send
    assert Purpose.parse(str(purpose)) == purpose
    assert (send.couple, send.ritual) == (couple_id, ritual)


@given(couple_id=_slugs, day=st.dates(date(2000, 1, 1), date(2099, 12, 31)), partner=_slugs)
def test_summaries_feed_renders_and_confirmations_parse_back(
    couple_id: str, day: date, partner: str
) -> None:
    summary = SendId(week_occurrence_id(couple_id, day), Purpose.summary(), partner)
    assert parse_event_id(str(summary)) == summary
    assert summary.is_summary
    assert summary.week == day
    later = LaterId(couple_id, LaterKind.FEED, day)
    assert parse_event_id(str(later)) == later
    confirmation = ConfirmationId("SM" + "a" * 32)
    assert parse_event_id(str(confirmation)) == confirmation


def test_the_wire_spellings_are_the_ones_stored_in_redis_and_the_prompt_log() -> None:
    occ = "alex-sam/date_night/20261127T1930"
    moved = datetime(2026, 11, 28, 18, 30, tzinfo=UTC)
    assert str(SendId(occ, Purpose.prompt(), "alex")) == f"{occ}/prompt/alex"
    assert str(Purpose.reminder(timedelta(hours=3), moved)) == "reminder-3h@20261128T1830Z"
    assert str(Purpose.snooze(moved)) == "snooze-20261128T183000+0000"
    assert str(Purpose.fire(moved)) == "fire-20261128T183000+0000"
    assert str(SendId(occ, Purpose.reveal(), "sam")) == f"{occ}/reveal/sam"
    assert str(Purpose.reveal().again()) == "reveal~resend"
    assert str(LaterId("alex-sam", LaterKind.FEED, date(2026, 11, 28))) == (
        "alex-sam/feed/20261128"
    )
    assert parse_event_id("alex-sam/_week/20261123") == LaterId(
        "alex-sam", LaterKind.WEEK, date(2026, 11, 23)
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "alex-sam",
        "alex-sam/check_in/20261125T2100",  # an occurrence, not an event
        "alex-sam/check_in/20261125T2100/prompt",
        "alex-sam/check_in/20261125T2100/nudge/alex",
        "alex-sam/check_in/2026-11-25/prompt/alex",
        "alex-sam/check_in/20261125T2100/reminder-soon/alex",
        "alex-sam/check_in/20261125T2100/snooze-tomorrow/alex",
        "alex-sam/check_in/20261125T2100/summary/alex",  # a summary only of a week
        "alex-sam/_week/20261123/prompt/alex",
        "alex-sam/feed/2026112",
        "alex-sam/party/20261128",
        "reply/",
        "alex-sam//20261125T2100/prompt/alex",
    ],
)
def test_anything_else_is_refused_naming_the_text(text: str) -> None:
    with pytest.raises(EventIdInvalid) as caught:
        parse_event_id(text)
    assert repr(text) in str(caught.value) or repr(text.split("/")[-2]) in str(caught.value)


def test_parse_send_id_refuses_ids_of_other_shapes() -> None:
    with pytest.raises(EventIdInvalid, match="not the id of a text"):
        parse_send_id("alex-sam/feed/20261128")


def test_planned_sends_carry_their_typed_id() -> None:
    c = couple({"kind": "date_night", "schedule": "every friday at 19:30", "remind": ["2d"]})
    for send in planned_sends(c, utc(2026, 11, 1), utc(2026, 12, 1)):
        assert str(send.id) == send.event_id
        assert parse_send_id(send.event_id) == send.id
        assert send.purpose.kind in (PurposeKind.PROMPT, PurposeKind.REMINDER)


# --- deadlines ------------------------------------------------------------------------------

AT = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)
STARTS = AT + timedelta(hours=3)
GRACE = Grace(prompt=timedelta(hours=2), reminder=timedelta(hours=5), summary=timedelta(hours=12))


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [
        (Purpose.prompt(), AT + timedelta(hours=2)),
        (Purpose.prompt(STARTS), AT + timedelta(hours=2)),  # a moved prompt: a prompt
        (Purpose.reminder(timedelta(hours=3)), STARTS),  # never once the date began
        (Purpose.reminder(timedelta(hours=3), STARTS), STARTS),
        # A snooze comes after the start, by nature: its grace is a prompt's, from its time.
        (Purpose.snooze(AT), AT + timedelta(hours=2)),
        (Purpose.fire(AT), AT + timedelta(hours=2)),
        (Purpose.summary(), AT + timedelta(hours=12)),
    ],
    ids=["prompt", "moved-prompt", "reminder", "moved-reminder", "snooze", "fire", "summary"],
)
def test_each_purpose_has_one_deadline(purpose: Purpose, expected: datetime) -> None:
    assert deadline(purpose, AT, STARTS, GRACE) == expected


def test_a_snooze_after_the_start_is_not_past_its_deadline_at_its_own_time() -> None:
    # The defect: a snooze was given the reminder's deadline, min(at + grace, starts),
    # which is before its own fire time once the occurrence has started.
    started = AT - timedelta(minutes=30)
    assert deadline(Purpose.snooze(AT), AT, started, GRACE) > AT
    moved_prompt = Purpose.prompt(AT)
    assert deadline(moved_prompt, AT, AT, GRACE) > AT
