import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.couples import Couple
from service.domain.occurrences import occurrences
from tests.domain.builders import couple, utc

NY = ZoneInfo("America/New_York")


def _local(occ_start: datetime, tz: str) -> str:
    return occ_start.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %z")


def test_spring_forward_gap_reads_with_offset_before_the_gap() -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 02:30"})
    found = occurrences(c, utc(2026, 3, 7), utc(2026, 3, 10))
    assert [_local(o.start, "America/New_York") for o in found] == [
        "2026-03-07 02:30 -0500",
        "2026-03-08 03:30 -0400",  # 02:30 does not exist; EST read gives 07:30Z = 03:30 EDT
        "2026-03-09 02:30 -0400",
    ]
    assert found[1].id == "alex-sam/check_in/20260308T0230"  # the nominal wall time names it


def test_fall_back_fold_fires_once_at_the_first_reading() -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 01:30"})
    found = occurrences(c, utc(2026, 10, 31), utc(2026, 11, 3))
    nov1 = [o for o in found if o.wall.date().isoformat() == "2026-11-01"]
    assert len(nov1) == 1
    assert nov1[0].start.astimezone(UTC) == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, not EST


def test_lord_howe_half_hour_gap_shifts_by_thirty_minutes() -> None:
    c = couple(
        {"kind": "check_in", "schedule": "every day at 02:15"}, timezone="Australia/Lord_Howe"
    )
    found = occurrences(c, utc(2026, 10, 3), utc(2026, 10, 5))
    # 2026-10-04 02:00 -> 02:30 local; 02:15 is read at +10:30 and lands on 02:45 +11:00.
    oct4 = next(o for o in found if o.wall.day == 4)
    assert _local(oct4.start, "Australia/Lord_Howe") == "2026-10-04 02:45 +1100"


def test_chatham_gap_at_0245() -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 03:00"}, timezone="Pacific/Chatham")
    found = occurrences(c, utc(2026, 9, 25), utc(2026, 9, 29))
    # Chatham springs 02:45 -> 03:45 on 2026-09-27: 03:00 becomes 04:00 +13:45.
    sep27 = next(o for o in found if o.wall.day == 27)
    assert _local(sep27.start, "Pacific/Chatham") == "2026-09-27 04:00 +1345"
    assert len({o.wall.date() for o in found}) == len(found)


def test_far_east_and_far_west_zones_fire_on_their_own_local_dates() -> None:
    east = couple(
        {"kind": "check_in", "schedule": "every day at 00:30"}, timezone="Pacific/Kiritimati"
    )
    west = couple(
        {"kind": "check_in", "schedule": "every day at 23:30"}, timezone="Pacific/Pago_Pago"
    )
    e = occurrences(east, utc(2026, 6, 1), utc(2026, 6, 2))
    w = occurrences(west, utc(2026, 6, 1), utc(2026, 6, 3))
    assert [o.start.astimezone(UTC) for o in e] == [utc(2026, 6, 1, 10, 30)]  # +14
    assert [o.start.astimezone(UTC) for o in w] == [
        utc(2026, 6, 1, 10, 30),
        utc(2026, 6, 2, 10, 30),
    ]
    assert [o.wall.day for o in e] == [2]  # the 2nd in Kiritimati while it's the 1st in UTC
    assert [o.wall.day for o in w] == [31, 1]


def test_sao_paulo_keeps_one_offset_since_dst_was_abolished() -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 00:00"}, timezone="America/Sao_Paulo")
    offsets = {o.start.utcoffset() for o in occurrences(c, utc(2025, 1, 1), utc(2026, 1, 1))}
    assert offsets == {timedelta(hours=-3)}


def test_leap_day_rule_fires_only_in_leap_years() -> None:
    c = couple(
        {"kind": "custom", "rrule": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29", "at": "20:00"},
        timezone="Europe/London",
    )
    found = occurrences(c, utc(2023, 1, 1), utc(2033, 1, 1))
    assert [o.wall.year for o in found] == [2024, 2028, 2032]


def test_monthly_last_day_handles_february_in_leap_and_common_years() -> None:
    c = couple({"kind": "growth", "schedule": "monthly on the last day at 20:00"})
    found = occurrences(c, utc(2027, 12, 5), utc(2028, 3, 15))
    assert [o.wall.date().isoformat() for o in found] == ["2027-12-31", "2028-01-31", "2028-02-29"]


def test_occurrence_ids_do_not_depend_on_file_order_or_other_rituals() -> None:
    date_night = {"kind": "date_night", "schedule": "every other friday at 19:30"}
    check_in = {"kind": "check_in"}
    alone = occurrences(couple(date_night), utc(2026, 1, 1), utc(2026, 3, 1))
    mixed = occurrences(couple(check_in, date_night), utc(2026, 1, 1), utc(2026, 3, 1))
    assert [o.id for o in alone] == [o.id for o in mixed if o.ritual == "date_night"]


def test_ids_and_planners_are_the_same_whatever_the_window() -> None:
    c = couple({"kind": "date_night", "schedule": "every 2 weeks on sat at 19:00"})
    whole = occurrences(c, utc(2026, 1, 1), utc(2027, 1, 1))
    pieces = [
        o
        for month in range(1, 13)
        for o in occurrences(c, utc(2026, month, 1), utc(2026 + month // 12, month % 12 + 1, 1))
    ]
    assert [(o.id, o.planner) for o in whole] == [(o.id, o.planner) for o in pieces]


def test_alternating_planner_alternates_occurrence_by_occurrence() -> None:
    for schedule in (
        "every other friday at 19:30",
        "mon, thu at 20:00",
        "first saturday of the month at 10:00",
    ):
        c = couple({"kind": "date_night", "schedule": schedule})
        planners = [o.planner for o in occurrences(c, utc(2026, 1, 1), utc(2027, 6, 1))]
        assert len(planners) > 10
        assert all(a != b for a, b in itertools.pairwise(planners)), schedule
        assert set(planners) == {"alex", "sam"}


def test_start_and_end_dates_bound_the_series_inclusively() -> None:
    c = couple({"kind": "check_in", "start": "2026-05-10", "end": "2026-05-12"})
    found = occurrences(c, utc(2026, 5, 1), utc(2026, 6, 1))
    assert [o.wall.day for o in found] == [10, 11, 12]


def test_disabled_rituals_have_no_occurrences() -> None:
    c = couple({"kind": "check_in", "enabled": False}, {"kind": "phone_free"})
    assert {o.ritual for o in occurrences(c, utc(2026, 5, 1), utc(2026, 5, 8))} == {"phone_free"}


def test_partner_local_rituals_fire_at_each_partners_own_time() -> None:
    c = couple(
        {"kind": "affection", "schedule": "every day at 07:30"},
        timezone="Europe/Berlin",
        partners=[
            {"name": "Mia", "phone": "+61400000001", "timezone": "Australia/Sydney"},
            {"name": "Jon", "phone": "+447700900001", "timezone": "Europe/London"},
        ],
    )
    found = occurrences(c, utc(2026, 7, 1), utc(2026, 7, 2))
    by_partner = {o.partner: o for o in found}
    assert by_partner["mia"].start.astimezone(UTC) == utc(
        2026, 7, 1, 21, 30
    )  # 07:30 +10 on the 2nd
    assert by_partner["jon"].start.astimezone(UTC) == utc(2026, 7, 1, 6, 30)
    assert by_partner["mia"].id.endswith("/mia")
    assert by_partner["jon"].timezone == "Europe/London"


def test_end_is_start_plus_elapsed_duration_across_a_dst_change() -> None:
    c = couple({"kind": "date_night", "schedule": "every day at 23:00", "duration": "4h"})
    found = occurrences(c, utc(2026, 11, 1), utc(2026, 11, 2))
    (occ,) = [o for o in found if o.wall.day == 31]  # 23:00 EDT on Oct 31
    assert occ.end.astimezone(UTC) - occ.start.astimezone(UTC) == timedelta(hours=4)
    assert _local(occ.end, "America/New_York") == "2026-11-01 02:00 -0500"


@settings(max_examples=60, deadline=None)
@given(
    start=st.datetimes(datetime(2024, 1, 1), datetime(2030, 1, 1), timezones=st.just(UTC)),
    hours=st.integers(1, 24 * 40),
)
def test_window_returns_exactly_the_starts_inside_it(start: datetime, hours: int) -> None:
    c = couple({"kind": "check_in"}, {"kind": "date_night"}, {"kind": "gratitude"})
    end = start + timedelta(hours=hours)
    found = occurrences(c, start, end)
    assert all(start <= o.start < end for o in found)
    wider = occurrences(c, start - timedelta(days=3), end + timedelta(days=3))
    assert [o.id for o in wider if start <= o.start < end] == [o.id for o in found]


def test_occurrence_ids_parse_back_and_find_their_occurrence() -> None:
    from service.domain.occurrences import find_occurrence, parse_occurrence_id

    c = couple({"kind": "check_in", "schedule": "every day at 02:30"}, {"kind": "gratitude"})
    for occ in occurrences(c, utc(2026, 3, 7), utc(2026, 3, 10)):
        key = parse_occurrence_id(occ.id)
        assert (key.couple, key.ritual, key.wall, key.partner) == (
            occ.couple,
            occ.ritual,
            occ.wall,
            occ.partner,
        )
        assert find_occurrence(c, occ.id) == occ  # the gap day's 02:30 included
    assert find_occurrence(c, "alex-sam/check_in/20260308T0300") is None  # not a start
    assert find_occurrence(c, "alex-sam/nope/20260308T0230") is None
    assert find_occurrence(c, "other/check_in/20260308T0230") is None


def test_send_is_found_by_its_event_id_until_the_config_stops_naming_it() -> None:
    from service.domain.sends import find_send, planned_sends

    before = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["3h"]})
    after = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["1h"]})
    for send in planned_sends(before, utc(2026, 6, 1), utc(2026, 6, 3)):
        assert find_send(before, send.id) == send
        found_after = find_send(after, send.id)
        assert (found_after is None) == (str(send.purpose) == "reminder-3h")


def test_planner_turns_survive_a_reload_and_edits_to_other_rituals() -> None:
    date_night = {"kind": "date_night", "schedule": "every other friday at 19:30"}
    before = couple(date_night)
    # A reload builds the couple anew; an edit elsewhere in the file adds a ritual before it.
    after = couple({"kind": "check_in"}, dict(date_night))
    window = (utc(2026, 1, 1), utc(2028, 1, 1))

    def turns(c: Couple) -> list[tuple[str, str | None]]:
        return [(o.id, o.planner) for o in occurrences(c, *window) if o.ritual == "date_night"]

    assert len(turns(before)) == 52
    assert turns(before) == turns(after)
    # Asking for any later window alone (as a restarted scheduler does) agrees too.
    later = [
        (o.id, o.planner)
        for o in occurrences(after, utc(2027, 5, 1), utc(2027, 6, 1))
        if o.ritual == "date_night"
    ]
    assert later
    assert set(later) <= set(turns(before))
