"""The weekly summary: what each ritual came to over one week, in a text a partner reads in
five seconds. Monday to Monday in the couple's zone; skipped occurrences are not counted as
due, optional rituals count only what was done."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING

from service.domain.wallclock import resolve, zone

if TYPE_CHECKING:
    from service.domain.couples import Couple, Partner

__all__ = ["SUMMARY_AT", "RitualWeek", "summary_at", "summary_text", "week_bounds", "week_start_of"]

SUMMARY_MAX = 320  # two SMS segments
# The week's summary goes out the next Monday at this time in the couple's zone, each
# partner's held past their own quiet hours.
SUMMARY_AT = time(9, 0)


@dataclass(frozen=True, slots=True)
class RitualWeek:
    name: str
    due: int  # occurrences that counted (not skipped)
    done: int
    optional: bool = False


def week_start_of(day: date) -> date:
    """The Monday of ``day``'s week."""
    return day - timedelta(days=day.weekday())


def week_bounds(timezone: str, monday: date) -> tuple[datetime, datetime]:
    """Monday 00:00 to the next Monday 00:00, local to ``timezone``, as instants."""
    tz = zone(timezone)
    start = resolve(datetime.combine(monday, time()), tz)
    return start, resolve(datetime.combine(monday + timedelta(days=7), time()), tz)


def summary_at(couple: Couple, partner: Partner, monday: date) -> datetime:
    """When ``partner``'s summary of the week starting ``monday`` goes out: the next Monday
    at ``SUMMARY_AT`` in the couple's zone, held past the partner's quiet hours (their zone)."""
    due = resolve(datetime.combine(monday + timedelta(days=7), SUMMARY_AT), zone(couple.timezone))
    if partner.quiet_hours is None:
        return due
    return partner.quiet_hours.release(due, couple.partner_zone(partner))


def summary_text(partner: str, other: str, rituals: Sequence[RitualWeek]) -> str:
    """``Your week with Sam, Alex: check-in 5/7, date night 1/1. ...``; never over 320."""
    counted = [r for r in rituals if r.due or r.done]
    if not counted:
        return f"Your week with {other}, {partner}: a quiet one. New week, fresh start."
    parts = []
    for r in counted:
        parts.append(f"{r.name} {r.done}x" if r.optional else f"{r.name} {r.done}/{r.due}")
    full = sum(1 for r in counted if not r.optional and r.due and r.done >= r.due)
    closing = " Every one of them - well done." if full == len(counted) else " Have a good week."
    head = f"Your week with {other}, {partner}: "
    body = ", ".join(parts) + "."
    text = head + body + closing
    while len(text) > SUMMARY_MAX and parts:
        parts.pop()
        text = head + ", ".join(parts) + ", and more." + closing
    return text
