"""What Hearth texts back to a reply: short, warm, GSM-7, and always naming the ritual.

Keyword answers (STOP, START, HELP) follow the wording carriers and Twilio expect: say who
is texting, what happened, and how to undo it.
"""

from __future__ import annotations

from datetime import date, datetime

__all__ = [
    "HELP",
    "NOTHING_OPEN",
    "OPTED_IN",
    "OPTED_OUT",
    "REVEAL_CUT",
    "UNKNOWN_NUMBER",
    "already",
    "backfilled",
    "done",
    "journal",
    "moved",
    "no_such_ritual",
    "not_movable",
    "paused",
    "resumed",
    "revealed",
    "skipped",
    "snoozed",
    "too_old",
    "when_local",
]

HELP = (
    "Hearth: reply DONE, SKIP, SNOOZE 30m, PAUSE 3d, RESUME or MOVE sat 20:00, or just write "
    "a note. Add #name to pick a ritual. STOP to opt out."
)
OPTED_OUT = "Hearth: you're unsubscribed and will get no more texts. Reply START to resubscribe."
OPTED_IN = "Hearth: you're subscribed again. Reply HELP for help, STOP to opt out."
UNKNOWN_NUMBER = "Sorry, this number isn't set up to receive Hearth texts."
NOTHING_OPEN = "There's nothing open to log right now. Reply HELP to see what you can send."
# Ends a revealed answer that was cut to fit its text (``service/domain/reveals.py``).
REVEAL_CUT = "... (the whole answer is on your dashboard)"


def when_local(instant: datetime) -> str:
    """``Sat 5 Dec, 20:00`` in the instant's own zone."""
    return f"{instant:%a} {instant.day} {instant:%b}, {instant:%H:%M}"


def done(name: str, waiting_on: str | None, both: bool, streak: str) -> str:
    if waiting_on:
        return f"Logged your {name}. Waiting on {waiting_on}'s."
    base = f"Logged your {name}" + (" - you both did it." if both else ".")
    return f"{base} {streak}".strip()


def journal(name: str, waiting_on: str | None, streak: str) -> str:
    base = f"Saved your {name} note."
    if waiting_on:
        return f"{base} Waiting on {waiting_on}'s."
    return f"{base} {streak}".strip()


def already(name: str) -> str:
    return f"Your {name} is already logged. Reply HELP to see what else you can send."


def skipped(name: str, start: datetime, calendar: bool) -> str:
    tail = " Your calendar will drop it." if calendar else ""
    return f"Skipped {name} on {when_local(start)}.{tail}"


def snoozed(name: str, at: datetime) -> str:
    return f"OK, I'll remind you about your {name} at {at:%H:%M}."


def paused(until: datetime) -> str:
    return f"Paused until {when_local(until)}. Reply RESUME to start again sooner."


def resumed() -> str:
    return "Welcome back. Your prompts are on again."


def moved(name: str, start: datetime) -> str:
    return f"Moved {name} to {when_local(start)}. Your calendar will update."


def not_movable(name: str) -> str:
    return f"Only calendar rituals can be moved; {name} isn't one. Reply SKIP to skip it."


def no_such_ritual(tag: str, known: list[str]) -> str:
    names = ", ".join("#" + k for k in known[:4])
    return f"No ritual called #{tag[:20]}. Yours: {names}."


def revealed(other: str, name: str, answer: str) -> str:
    """The other partner's answer, once both answered: ``Sam's check-in: <answer>``."""
    return f"{other}'s {name}: {answer}"


def backfilled(name: str, day: date, waiting_on: str | None) -> str:
    """``Logged your check-in for Sunday 30 Nov.``: a DONE yesterday names the day it logged."""
    base = f"Logged your {name} for {_day(day)}."
    return f"{base} Waiting on {waiting_on}'s." if waiting_on else base


def too_old(name: str, day: date) -> str:
    return (
        f"Your {name} on {_day(day)} is too old to log: DONE yesterday works for 48 hours. "
        "Reply DONE for the latest one."
    )


def _day(day: date) -> str:
    return f"{day:%A} {day.day} {day:%b}"
