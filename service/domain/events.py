"""Event ids and purposes: the one place that formats and parses them.

Every event Hearth schedules or records has a stable id, so that handling it twice has the
effect of handling it once. Three shapes, told apart by their parts, never by position::

    SendId          <occurrence id>/<purpose>/<partner>     a text to one partner
                    alex-and-sam/check_in/20261125T2100/prompt/alex
                    alex-and-sam/date_night/20261127T1930/reminder-3h@20261128T1830Z/sam
                    alex-and-sam/_week/20261123/summary/alex      (a weekly summary)
                    alex-and-sam/check_in/20261125T2100/reveal/sam (Alex's answer, to Sam)
    LaterId         <couple>/feed/<local date>               a couple-level job, not a text
    ConfirmationId  reply/<MessageSid>                       the answer to a partner's reply

A purpose says why a text goes out: the occurrence's ``prompt``, a ``reminder`` some lead
before it, a ``snooze`` or a ``fire`` (sent by hand) of the prompt at an instant, the weekly
``summary``, and a ``reveal``: once both partners answered an occurrence of a ``reveal: true``
ritual, the other partner's answer, one per recipient and occurrence (so one id, one claim).
A moved occurrence's prompt and reminders carry ``@<new start in UTC>``, because
the ones planned for the old start may already have fired. A purpose ending ``~resend`` is
the one new text sent when the carrier could not deliver the first (``prompt~resend``). The
wire spellings are stable:
they are keys in Redis and in the prompt log.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

from service.domain.durations import format_duration, parse_duration
from service.domain.errors import HearthError

__all__ = [
    "WEEK",
    "ConfirmationId",
    "EventId",
    "EventIdInvalid",
    "LaterId",
    "LaterKind",
    "Purpose",
    "PurposeKind",
    "SendId",
    "parse_event_id",
    "parse_send_id",
    "week_occurrence_id",
]

# Stands where a ritual id would in a weekly summary's "occurrence": not a valid ritual id.
WEEK = "_week"
_MOVED = "%Y%m%dT%H%MZ"
_RESEND = "~resend"
_INSTANT = "%Y%m%dT%H%M%S%z"
_DAY = re.compile(r"\d{8}")
_WALL = re.compile(r"\d{8}T\d{4}")


class EventIdInvalid(HearthError, ValueError):
    """A string is not an event id or purpose of any shape; the message quotes it."""


class PurposeKind(StrEnum):
    PROMPT = "prompt"
    REMINDER = "reminder"
    SNOOZE = "snooze"
    FIRE = "fire"
    SUMMARY = "summary"
    REVEAL = "reveal"


@dataclass(frozen=True, slots=True)
class Purpose:
    """Why a text goes out. Build with the class methods; ``str()`` is the wire spelling."""

    kind: PurposeKind
    lead: timedelta | None = None  # REMINDER: how long before the start
    at: datetime | None = None  # SNOOZE, FIRE: the instant asked for (aware UTC)
    moved_to: datetime | None = None  # PROMPT, REMINDER of a moved occurrence (aware UTC)
    # The one new text sent after the carrier could not deliver this one (a switched-off
    # phone): its own claim, the original's deadline (``service/domain/delivery.py``).
    resend: bool = False

    @classmethod
    def prompt(cls, moved_to: datetime | None = None) -> Purpose:
        return cls(PurposeKind.PROMPT, moved_to=_utc_minute(moved_to))

    @classmethod
    def reminder(cls, lead: timedelta, moved_to: datetime | None = None) -> Purpose:
        return cls(PurposeKind.REMINDER, lead=lead, moved_to=_utc_minute(moved_to))

    @classmethod
    def snooze(cls, at: datetime) -> Purpose:
        return cls(PurposeKind.SNOOZE, at=_utc_second(at))

    @classmethod
    def fire(cls, at: datetime) -> Purpose:
        return cls(PurposeKind.FIRE, at=_utc_second(at))

    @classmethod
    def summary(cls) -> Purpose:
        return cls(PurposeKind.SUMMARY)

    @classmethod
    def reveal(cls) -> Purpose:
        return cls(PurposeKind.REVEAL)

    def again(self) -> Purpose:
        """This purpose's resend: ``<purpose>~resend``."""
        return Purpose(self.kind, self.lead, self.at, self.moved_to, resend=True)

    @property
    def original(self) -> Purpose:
        """The purpose a resend repeats (itself when it is no resend)."""
        return Purpose(self.kind, self.lead, self.at, self.moved_to)

    @property
    def is_extra(self) -> bool:
        """A text beside the occurrence's planned ones (snooze, fire): the plan never lists
        it, so a re-plan keeps it while its occurrence stands."""
        return self.kind in (PurposeKind.SNOOZE, PurposeKind.FIRE)

    def __str__(self) -> str:
        return self._spelled() + (_RESEND if self.resend else "")

    def _spelled(self) -> str:
        kind = self.kind
        if kind is PurposeKind.PROMPT or kind is PurposeKind.REMINDER:
            text = "prompt" if self.lead is None else f"reminder-{format_duration(self.lead)}"
            return text if self.moved_to is None else f"{text}@{self.moved_to:{_MOVED}}"
        if kind is PurposeKind.SNOOZE or kind is PurposeKind.FIRE:
            assert self.at is not None
            return f"{kind.value}-{self.at:{_INSTANT}}"
        return kind.value

    @classmethod
    def parse(cls, text: str) -> Purpose:
        """The inverse of ``str()``; ``EventIdInvalid`` when ``text`` is no purpose."""
        if text.endswith(_RESEND):
            return cls.parse(text.removesuffix(_RESEND)).again()
        base, _, moved = text.partition("@")
        try:
            moved_to = datetime.strptime(moved, _MOVED).replace(tzinfo=UTC) if moved else None
            if base == "prompt":
                return cls.prompt(moved_to)
            if base.startswith("reminder-"):
                return cls.reminder(parse_duration(base.removeprefix("reminder-")), moved_to)
            if not moved:
                if base == "summary":
                    return cls.summary()
                if base == "reveal":
                    return cls.reveal()
                for kind in (PurposeKind.SNOOZE, PurposeKind.FIRE):
                    if base.startswith(kind.value + "-"):
                        spelled = base.removeprefix(kind.value + "-")
                        at = datetime.strptime(spelled, _INSTANT)  # noqa: DTZ007 - has %z
                        return cls(kind, at=at.astimezone(UTC))
        except ValueError:
            pass
        raise EventIdInvalid(
            f"{text!r} is not a purpose (prompt, reminder-3h, snooze-<instant>, "
            "fire-<instant>, summary, reveal, optionally @<moved start>, optionally ~resend)"
        )


@dataclass(frozen=True, slots=True)
class SendId:
    """One text: ``<occurrence id>/<purpose>/<partner key>``."""

    occurrence_id: str
    purpose: Purpose
    partner: str

    def __str__(self) -> str:
        return f"{self.occurrence_id}/{self.purpose}/{self.partner}"

    @property
    def couple(self) -> str:
        return self.occurrence_id.split("/", 1)[0]

    @property
    def ritual(self) -> str:
        """The ritual's id (``_week`` for a weekly summary)."""
        return self.occurrence_id.split("/", 2)[1]

    @property
    def is_summary(self) -> bool:
        return self.purpose.kind is PurposeKind.SUMMARY

    @property
    def week(self) -> date:
        """A weekly summary's week (its Monday); ``EventIdInvalid`` for any other text."""
        if not self.is_summary:
            raise EventIdInvalid(f"{self} is not a weekly summary")
        return _day(self.occurrence_id.rsplit("/", 1)[1])


class LaterKind(StrEnum):
    FEED = "feed"  # re-render the couple's calendar feeds (nightly)
    WEEK = "_week"  # the weekly summaries of ids planned before summaries were per partner


@dataclass(frozen=True, slots=True)
class LaterId:
    """A couple-level job at a local date: ``<couple>/feed/<YYYYMMDD>``."""

    couple: str
    kind: LaterKind
    day: date

    def __str__(self) -> str:
        return f"{self.couple}/{self.kind.value}/{self.day:%Y%m%d}"


@dataclass(frozen=True, slots=True)
class ConfirmationId:
    """The confirmation texted back to the reply ``message_sid``: ``reply/<sid>``."""

    message_sid: str

    def __str__(self) -> str:
        return f"reply/{self.message_sid}"


EventId = SendId | LaterId | ConfirmationId


def week_occurrence_id(couple: str, monday: date) -> str:
    """What a weekly summary stands in for an occurrence id: ``<couple>/_week/<monday>``."""
    return f"{couple}/{WEEK}/{monday:%Y%m%d}"


def parse_event_id(text: str) -> EventId:
    """The typed id ``text`` spells; ``EventIdInvalid`` naming it when it spells none."""
    parts = text.split("/")
    if len(parts) == 2 and parts[0] == "reply" and parts[1]:
        return ConfirmationId(parts[1])
    if len(parts) == 3 and _DAY.fullmatch(parts[2]):
        try:
            return LaterId(parts[0], LaterKind(parts[1]), _day(parts[2]))
        except ValueError:
            pass
    if len(parts) in (5, 6) and all(parts):
        # couple/ritual/<wall>[/owner]/purpose/partner, or couple/_week/<day>/summary/partner
        occurrence = "/".join(parts[:-2])
        shape = _DAY if parts[1] == WEEK else _WALL
        if shape.fullmatch(parts[2]) and (len(parts) == 5 or parts[1] != WEEK):
            purpose = Purpose.parse(parts[-2])
            if (purpose.kind is PurposeKind.SUMMARY) == (parts[1] == WEEK):
                return SendId(occurrence, purpose, parts[-1])
    raise EventIdInvalid(
        f"{text!r} is not an event id (<occurrence>/<purpose>/<partner>, "
        "<couple>/feed/<date> or reply/<sid>)"
    )


def parse_send_id(text: str) -> SendId:
    """``parse_event_id`` for where only a text may stand."""
    found = parse_event_id(text)
    if not isinstance(found, SendId):
        raise EventIdInvalid(f"{text!r} is not the id of a text")
    return found


def _day(text: str) -> date:
    return date(int(text[:4]), int(text[4:6]), int(text[6:]))


def _utc_minute(instant: datetime | None) -> datetime | None:
    if instant is None:
        return None
    return _aware(instant).astimezone(UTC).replace(second=0, microsecond=0)


def _utc_second(instant: datetime) -> datetime:
    return _aware(instant).astimezone(UTC).replace(microsecond=0)


def _aware(instant: datetime) -> datetime:
    if instant.utcoffset() is None:
        raise ValueError(f"an event's instant must be aware, not {instant!r}")
    return instant
