from datetime import UTC, timedelta
from zoneinfo import ZoneInfo

from service.domain.quiet_hours import QuietHours
from service.domain.sends import planned_sends
from tests.domain.builders import couple, utc

NY = ZoneInfo("America/New_York")


def test_date_night_sends_reminders_before_and_a_prompt_at_start_to_both() -> None:
    c = couple(
        {"kind": "date_night", "schedule": "every other friday at 19:30", "remind": ["2d", "3h"]}
    )
    sends = planned_sends(c, utc(2026, 1, 1), utc(2026, 1, 20))
    occ_id = sends[0].occurrence_id
    mine = [s for s in sends if s.occurrence_id == occ_id]
    assert sorted((str(s.purpose), s.partner) for s in mine) == [
        ("prompt", "alex"),
        ("prompt", "sam"),
        ("reminder-2d", "alex"),
        ("reminder-2d", "sam"),
        ("reminder-3h", "alex"),
        ("reminder-3h", "sam"),
    ]
    start = next(s.due for s in mine if str(s.purpose) == "prompt")
    assert {s.due for s in mine if str(s.purpose) == "reminder-3h"} == {start - timedelta(hours=3)}
    assert all(s.event_id == f"{occ_id}/{s.purpose}/{s.partner}" for s in mine)


def test_planner_reminder_tells_the_planner_it_is_their_turn() -> None:
    c = couple({"kind": "date_night"})
    sends = [
        s
        for s in planned_sends(c, utc(2026, 1, 1), utc(2026, 3, 1))
        if str(s.purpose) == "reminder-2d"
    ]
    planners = {s.occurrence_id: s for s in sends if "your turn to plan" in s.body}
    others = [s for s in sends if "your turn" not in s.body]
    assert len(planners) == len({s.occurrence_id for s in sends})
    assert all("is planning this one" in s.body for s in others)
    assert len({s.partner for s in planners.values()}) == 2


def test_texts_fill_placeholders_with_names_and_recipients_local_time() -> None:
    c = couple(
        {
            "kind": "conversation",
            "schedule": "first sunday of the month at 18:00",
            "remind": ["1d"],
            "texts": {"reminder": "{partner}: talk with {other} {lead} at {time}."},
        },
        partners=[
            {"name": "Alex", "phone": "+15550000001"},
            {"name": "Sam", "phone": "+15550000002", "timezone": "America/Los_Angeles"},
        ],
    )
    bodies = {
        s.partner: s.body
        for s in planned_sends(c, utc(2026, 3, 30), utc(2026, 4, 6))
        if str(s.purpose) == "reminder-1d"
    }
    assert bodies == {
        "alex": "Alex: talk with Sam in 1 day at 18:00.",
        "sam": "Sam: talk with Alex in 1 day at 15:00.",
    }


def test_send_due_in_quiet_hours_is_held_to_their_end_in_partners_zone() -> None:
    c = couple(
        {"kind": "check_in", "schedule": "every day at 23:00"},
        partners=[
            {"name": "Alex", "phone": "+15550000001", "quiet_hours": "22:30-07:30"},
            {"name": "Sam", "phone": "+15550000002"},
        ],
    )
    sends = planned_sends(c, utc(2026, 6, 10), utc(2026, 6, 12))
    alex = [s for s in sends if s.partner == "alex"]
    sam = [s for s in sends if s.partner == "sam"]
    assert all(f"{s.at:%H:%M}" == "07:30" and s.at > s.due for s in alex)
    assert all(s.at == s.due and f"{s.at:%H:%M}" == "23:00" for s in sam)


def test_quiet_hours_release_across_spring_forward_keeps_wall_time() -> None:
    quiet = QuietHours.parse("22:00-07:00")
    # Due 23:00 EST on Mar 7; the night loses an hour; release is 07:00 EDT on Mar 8.
    due = utc(2026, 3, 8, 4, 0)
    release = quiet.release(due, NY)
    assert release.astimezone(NY).strftime("%Y-%m-%d %H:%M %z") == "2026-03-08 07:00 -0400"
    assert release - due == timedelta(hours=7)  # eight wall-clock hours, seven elapsed


def test_quiet_hours_ending_in_a_gap_release_after_the_gap() -> None:
    quiet = QuietHours.parse("23:00-02:30")
    release = quiet.release(utc(2026, 3, 8, 5, 0), NY)  # 00:00 EST on the gap night
    assert release.astimezone(NY).strftime("%H:%M %z") == "03:30 -0400"


def test_quiet_hours_outside_the_window_do_not_hold() -> None:
    quiet = QuietHours.parse("22:30-07:30")
    due = utc(2026, 6, 10, 16, 0)  # noon in New York
    assert quiet.release(due, NY) == due
    daytime = QuietHours.parse("13:00-14:00")
    assert daytime.release(utc(2026, 6, 10, 17, 30), NY).astimezone(NY).strftime("%H:%M") == "14:00"


def test_sends_in_window_are_sorted_and_have_unique_event_ids() -> None:
    c = couple(
        {"kind": "check_in"}, {"kind": "date_night"}, {"kind": "gratitude"}, {"kind": "affection"}
    )
    sends = planned_sends(c, utc(2026, 1, 1), utc(2026, 2, 1))
    assert [s.at.astimezone(UTC) for s in sends] == sorted(s.at.astimezone(UTC) for s in sends)
    assert len({s.event_id for s in sends}) == len(sends)
    again = planned_sends(c, utc(2026, 1, 1), utc(2026, 2, 1))
    assert [s.event_id for s in again] == [s.event_id for s in sends]
