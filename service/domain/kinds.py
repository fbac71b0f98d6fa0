"""The ritual kinds Hearth ships, and what each one does when the YAML says nothing more.

The table follows BRIEF.md: schedule, channels, who takes part and what completes it. The
words of the texts live in ``texts.py``; this module holds only the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

__all__ = ["KIND_DEFAULTS", "Channel", "Completion", "KindDefaults", "RitualKind", "Who"]


class RitualKind(StrEnum):
    CHECK_IN = "check_in"
    DATE_NIGHT = "date_night"
    PHONE_FREE = "phone_free"
    GRATITUDE = "gratitude"
    AFFECTION = "affection"
    LISTENING = "listening"
    TOUCH_MAP = "touch_map"
    CONVERSATION = "conversation"
    GROWTH = "growth"
    CUSTOM = "custom"


class Channel(StrEnum):
    SMS = "sms"
    CALENDAR = "calendar"


class Who(StrEnum):
    """Who takes part in each occurrence."""

    BOTH = "both"  # one occurrence, done together; both are prompted
    EACH = "each"  # each partner does it on their own; each is prompted and counted alone
    ALTERNATING = "alternating"  # done together; one partner plans, turn by turn


class Completion(StrEnum):
    """What makes an occurrence count as done."""

    BOTH = "both"  # both partners reply
    EACH = "each"  # counted per partner
    EITHER = "either"  # one reply from either partner completes it
    OPTIONAL = "optional"  # DONE is welcome, never asked for again


@dataclass(frozen=True, slots=True)
class KindDefaults:
    name: str  # how texts and confirmations call it: "Logged your check-in."
    schedule: str | None  # None: the YAML must give one (custom)
    duration: timedelta
    channels: tuple[Channel, ...]
    who: Who
    completion: Completion
    remind: tuple[timedelta, ...] = ()
    partner_local: bool = False  # each partner at their own local time (who: each only)
    journal: bool = False  # a free-text reply is kept as the partner's journal entry


_SMS = (Channel.SMS,)
_BOTH_CHANNELS = (Channel.CALENDAR, Channel.SMS)

KIND_DEFAULTS: dict[RitualKind, KindDefaults] = {
    RitualKind.CHECK_IN: KindDefaults(
        "check-in", "every day at 21:00", timedelta(minutes=10), _SMS, Who.BOTH,
        Completion.BOTH, journal=True,
    ),
    RitualKind.DATE_NIGHT: KindDefaults(
        "date night", "every other friday at 19:30", timedelta(hours=3), _BOTH_CHANNELS,
        Who.ALTERNATING, Completion.EITHER, remind=(timedelta(days=2), timedelta(hours=3)),
    ),
    RitualKind.PHONE_FREE: KindDefaults(
        "phone-free time", "every day at 19:00", timedelta(hours=1), _BOTH_CHANNELS,
        Who.BOTH, Completion.OPTIONAL,
    ),
    RitualKind.GRATITUDE: KindDefaults(
        "gratitude note", "3 times a week at 12:30", timedelta(minutes=5), _SMS, Who.EACH,
        Completion.EACH, partner_local=True,
    ),
    RitualKind.AFFECTION: KindDefaults(
        "affection", "every day at 07:30", timedelta(minutes=5), _SMS, Who.EACH,
        Completion.OPTIONAL, partner_local=True,
    ),
    RitualKind.LISTENING: KindDefaults(
        "mirror listening", "every sunday at 19:00", timedelta(minutes=30), _SMS, Who.BOTH,
        Completion.BOTH, journal=True,
    ),
    RitualKind.TOUCH_MAP: KindDefaults(
        "touch map", "every other saturday at 20:00", timedelta(minutes=30), _SMS, Who.BOTH,
        Completion.BOTH, journal=True,
    ),
    RitualKind.CONVERSATION: KindDefaults(
        "honest conversation", "first sunday of the month at 18:00", timedelta(hours=1),
        _BOTH_CHANNELS, Who.BOTH, Completion.BOTH, remind=(timedelta(days=1),), journal=True,
    ),
    RitualKind.GROWTH: KindDefaults(
        "goals check", "last sunday of the month at 18:00", timedelta(minutes=45), _SMS,
        Who.BOTH, Completion.BOTH, journal=True,
    ),
    RitualKind.CUSTOM: KindDefaults(
        "ritual", None, timedelta(minutes=30), _SMS, Who.BOTH, Completion.BOTH, journal=True,
    ),
}  # fmt: skip
