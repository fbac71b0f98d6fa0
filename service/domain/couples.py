"""A couple as its YAML describes it: partners, rituals, zones. Values only, all frozen.

``build_couple`` is the one way in: it validates a plain mapping (parsed YAML, a test's
dict) and returns a ``Couple`` or raises ``CoupleInvalid`` listing every problem with its
field path. File names, lines and columns are the config adapter's business.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, time, timedelta
from difflib import get_close_matches
from functools import cached_property
from typing import Annotated, Any, Self
from zoneinfo import ZoneInfo

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from service.domain.durations import format_duration, parse_duration
from service.domain.errors import CoupleInvalid, Path, Problem
from service.domain.feed_horizons import FEED_LIMITS, most_occurrences
from service.domain.kinds import KIND_DEFAULTS, Channel, Completion, RitualKind, Who
from service.domain.quiet_hours import QuietHours
from service.domain.schedules import EXAMPLES, Recurrence, parse_rrule, parse_schedule
from service.domain.texts import DEFAULT_TEXTS, PLACEHOLDERS, check_template
from service.domain.wallclock import parse_time_of_day, zone

__all__ = [
    "WEEKDAYS",
    "Couple",
    "Partner",
    "Ritual",
    "RitualTexts",
    "SummaryTime",
    "build_couple",
    "couple_json_schema",
]

SLUG = r"^[a-z0-9][a-z0-9_-]{0,62}$"
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
E164 = r"^\+[1-9][0-9]{6,14}$"


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"{value!r} is not a duration; write it like 45m, 1h30m, 2d or PT45M")


def _schedule(value: object) -> Recurrence:
    if isinstance(value, Recurrence):
        return value
    if isinstance(value, str):
        return parse_schedule(value)
    raise ValueError(f"{value!r} is not a schedule; write it like 'every day at 21:00'")


def _zone_name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a time zone name such as 'Europe/Berlin'")
    zone(value)
    return value


def _quiet_hours(value: object) -> QuietHours:
    if isinstance(value, QuietHours):
        return value
    if isinstance(value, str):
        return QuietHours.parse(value)
    raise ValueError(f"{value!r} is not a window; write it like '22:30-07:30'")


def _time_of_day(value: object) -> time:
    if isinstance(value, time):
        return value
    if isinstance(value, str):
        return parse_time_of_day(value)
    raise ValueError(f"{value!r} is not a time of day; write it like '19:30' (in quotes)")


def _weekday(value: object) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 7:
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        for i, name in enumerate(WEEKDAYS):
            if word == name or (len(word) >= 3 and name.startswith(word)):
                return i
        close = get_close_matches(word, WEEKDAYS, n=1, cutoff=0.6)
        hint = f" — did you mean {close[0]!r}?" if close else "; write it like 'sunday'"
        raise ValueError(f"{value!r} is not a day of the week{hint}")
    raise ValueError(f"{value!r} is not a day of the week; write it like 'sunday'")


Duration = Annotated[
    timedelta,
    PlainValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\s*(P[0-9WDTHMS]+|([0-9]+\s*[a-zA-Z]+\s*)+)\s*$",
            "examples": ["45m", "1h30m", "2d", "1w", "PT45M"],
        }
    ),
]
Schedule = Annotated[
    Recurrence,
    PlainValidator(_schedule),
    PlainSerializer(lambda r: r.text, return_type=str),
    WithJsonSchema({"type": "string", "examples": list(EXAMPLES)}),
]
ZoneName = Annotated[
    str,
    PlainValidator(_zone_name),
    WithJsonSchema({"type": "string", "examples": ["Europe/Berlin", "America/New_York"]}),
]
Window = Annotated[
    QuietHours,
    PlainValidator(_quiet_hours),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{1,2}:\d{2}\s*-\s*\d{1,2}:\d{2}$"}),
]
TimeOfDay = Annotated[
    time,
    PlainValidator(_time_of_day),
    PlainSerializer(lambda t: f"{t:%H:%M}", return_type=str),
    WithJsonSchema({"type": "string", "examples": ["19:30", "7:30pm"]}),
]


Weekday = Annotated[
    int,
    PlainValidator(_weekday),
    PlainSerializer(lambda d: WEEKDAYS[d], return_type=str),
    WithJsonSchema({"type": "string", "enum": list(WEEKDAYS)}),
]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class SummaryTime(_Frozen):
    """When the weekly summary goes out, in the couple's zone (``summaries.py`` says which
    week it covers)."""

    day: Weekday = Field(default=6, description="Day of the week (0 Monday); default sunday.")
    at: TimeOfDay = Field(default=time(19, 0), description="Local time; default '19:00'.")


class Partner(_Frozen):
    name: str = Field(min_length=1, max_length=40, description="What Hearth calls them.")
    phone: str = Field(pattern=E164, description="Mobile number in E.164, e.g. +15551234567.")
    timezone: ZoneName | None = Field(
        default=None, description="Their own IANA zone, when it differs from the couple's."
    )
    quiet_hours: Window | None = Field(
        default=None, description="No texts in this local window, e.g. '22:30-07:30'."
    )

    @cached_property
    def key(self) -> str:
        """The partner's id in events and commands: the name, lower-cased and slugged."""
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-") or "partner"


class RitualTexts(_Frozen):
    """Overrides for a ritual's texts; placeholders: {partner} {other} {planner} {lead} {time}."""

    prompt: str | None = Field(default=None, min_length=1, max_length=480)
    reminder: str | None = Field(default=None, min_length=1, max_length=480)
    planner_reminder: str | None = Field(default=None, min_length=1, max_length=480)
    title: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, min_length=1, max_length=2000)

    @field_validator("*")
    @classmethod
    def _placeholders(cls, value: str | None) -> str | None:
        if value is not None:
            check_template(value)
        return value


# Memory: a service holds thousands of couples. Most rituals override no text, and the set of
# fields given is the same for most rituals of a kind; frozen models never change either, so
# one shared instance of each serves them all (a third of a couple's memory otherwise).
_NO_TEXTS = RitualTexts()
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}


def _share_fields_set(model: BaseModel) -> None:
    given = model.__pydantic_fields_set__
    shared = _FIELDS_SETS.setdefault(frozenset(given), given)
    object.__setattr__(model, "__pydantic_fields_set__", shared)


class Ritual(_Frozen):
    model_config = ConfigDict(json_schema_extra=lambda s: s.update(required=["kind"]))

    id: str = Field(pattern=SLUG, description="Unique in the file; defaults to the kind.")
    kind: RitualKind
    name: str = Field(min_length=1, max_length=60, description="What texts call it.")
    schedule: Schedule | None = Field(default=None, description="When, in friendly words.")
    at: TimeOfDay | None = Field(default=None, description="Time of day for a raw `rrule`.")
    rrule: str | None = Field(
        default=None, description="A raw RFC 5545 RRULE, for what `schedule` cannot say."
    )
    timezone: ZoneName | None = Field(default=None, description="Defaults to the couple's.")
    partner_local: bool = Field(
        default=False, description="who: each only: fire at each partner's own local time."
    )
    duration: Duration
    remind: tuple[Duration, ...] = Field(description="SMS reminders this long before the start.")
    alarms: tuple[Duration, ...] = Field(
        default=(), description="Calendar alarms this long before the start (calendar feeds)."
    )
    channels: tuple[Channel, ...] = Field(min_length=1)
    who: Who
    start: date | None = Field(default=None, description="First day (also fixes the parity).")
    end: date | None = Field(default=None, description="Last day, inclusive.")
    enabled: bool = True
    reveal: bool = Field(
        default=False,
        description="Both answer, then both see: once both partners have answered an "
        "occurrence, each is texted the other's answer. Only for rituals that ask a question "
        "(check_in, listening, touch_map, conversation, growth, custom).",
    )
    texts: RitualTexts = Field(default_factory=lambda: _NO_TEXTS)

    @model_validator(mode="before")
    @classmethod
    def _kind_defaults(cls, data: Any) -> Any:
        """Fill what the YAML leaves out from the kind's defaults (BRIEF.md's table)."""
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        try:
            kind = RitualKind(str(out.get("kind")))
        except ValueError:
            return out  # the kind's own error says what is wrong
        defaults = KIND_DEFAULTS[kind]
        out.setdefault("id", kind.value)
        out.setdefault("name", defaults.name)
        out.setdefault("duration", defaults.duration)
        out.setdefault("remind", defaults.remind)
        out.setdefault("channels", defaults.channels)
        out.setdefault("who", defaults.who)
        who = out["who"]
        out.setdefault("partner_local", defaults.partner_local and who in (Who.EACH, "each"))
        if "schedule" not in out and "rrule" not in out:
            if defaults.schedule is None:
                raise ValueError("a custom ritual needs a `schedule` (or a raw `rrule` with `at`)")
            out["schedule"] = defaults.schedule
        return out

    @field_validator("rrule")
    @classmethod
    def _rrule(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None:
            parse_rrule(value, info.data.get("at"))
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.schedule is not None and self.rrule is not None:
            raise ValueError("give either `schedule` or `rrule`, not both")
        if self.at is not None and self.rrule is None:
            raise ValueError("`at` goes with `rrule`; a `schedule` says its own time")
        _share_fields_set(self)
        return self

    @property
    def recurrence(self) -> Recurrence:
        """The compiled rule, from `schedule` or `rrule`."""
        if self.rrule is not None:
            return parse_rrule(self.rrule, self.at)
        assert self.schedule is not None  # _kind_defaults and _consistent guarantee one
        return self.schedule

    @property
    def completion(self) -> Completion:
        return KIND_DEFAULTS[self.kind].completion

    @property
    def journal(self) -> bool:
        return KIND_DEFAULTS[self.kind].journal

    @property
    def calendar(self) -> bool:
        return Channel.CALENDAR in self.channels

    @property
    def sms(self) -> bool:
        return Channel.SMS in self.channels

    def text(self, which: str) -> str:
        """The ritual's text ``which`` (prompt, reminder, …): its override, else the kind's."""
        own: str | None = getattr(self.texts, which)
        if own is not None:
            return own
        default: str = getattr(DEFAULT_TEXTS[self.kind], which)
        if which == "planner_reminder" and not default:
            return self.text("reminder")
        return default


class Couple(_Frozen):
    model_config = ConfigDict(
        title="Hearth couple file",
        json_schema_extra=lambda s: s.update(required=["timezone", "partners", "rituals"]),
    )

    couple: str = Field(pattern=SLUG, description="The couple's id; defaults to the file name.")
    timezone: ZoneName = Field(description="The couple's IANA time zone.")
    partners: tuple[Partner, Partner]
    rituals: tuple[Ritual, ...] = Field(max_length=100)
    summary: SummaryTime = Field(
        default_factory=SummaryTime,
        description="When the weekly summary goes out, e.g. {day: sunday, at: '19:00'} "
        "(the default), in the couple's zone and past each partner's quiet hours.",
    )

    @property
    def id(self) -> str:
        return self.couple

    def ritual(self, ritual_id: str) -> Ritual:
        return self._rituals_by_id[ritual_id]

    @cached_property
    def _rituals_by_id(self) -> dict[str, Ritual]:
        return {ritual.id: ritual for ritual in self.rituals}

    def partner(self, key: str) -> Partner:
        for partner in self.partners:
            if key.lower() in (partner.key, partner.name.lower()):
                return partner
        raise KeyError(key)

    def other(self, partner: Partner) -> Partner:
        return self.partners[1] if partner is self.partners[0] else self.partners[0]

    def zone_of(self, ritual: Ritual, partner: Partner | None = None) -> ZoneInfo:
        """The zone a ritual's wall times are read in (for ``partner`` when partner-local)."""
        if ritual.partner_local and partner is not None:
            return zone(partner.timezone or self.timezone)
        return zone(ritual.timezone or self.timezone)

    def partner_zone(self, partner: Partner) -> ZoneInfo:
        return zone(partner.timezone or self.timezone)


def build_couple(data: object, default_id: str | None = None) -> Couple:
    """Validate ``data`` into a ``Couple``; ``CoupleInvalid`` lists every problem at once."""
    if not isinstance(data, Mapping):
        raise CoupleInvalid([Problem((), "the file must be a mapping with timezone, partners "
                                         "and rituals")])  # fmt: skip
    raw = dict(data)
    if default_id is not None:
        raw.setdefault("couple", default_id)
    try:
        couple = Couple.model_validate(raw)
    except ValidationError as e:
        problems = [_problem(err) for err in e.errors()]
        raise CoupleInvalid(_without_noise(problems) + _raw_duplicate_ids(raw)) from None
    problems = _cross_checks(couple)
    if problems:
        raise CoupleInvalid(problems)
    return couple


def couple_json_schema() -> dict[str, Any]:
    """The JSON Schema of a couple file, as committed at ``schema/couple.schema.json``."""
    schema = Couple.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    ritual = schema["$defs"]["Ritual"]["properties"]
    ritual["texts"]["description"] = "Overrides; placeholders: " + ", ".join(
        "{" + p + "}" for p in PLACEHOLDERS
    )
    return schema


# --- problems -------------------------------------------------------------------------

_FIELDS: dict[str, list[str]] = {
    "couple": list(Couple.model_fields),
    "partner": list(Partner.model_fields),
    "ritual": list(Ritual.model_fields),
    "texts": list(RitualTexts.model_fields),
    "summary": list(SummaryTime.model_fields),
}


def _level(path: Path) -> str:
    if len(path) >= 3 and path[0] == "rituals" and path[2] == "texts":
        return "texts"
    if len(path) >= 2 and path[0] == "rituals":
        return "ritual"
    if len(path) >= 2 and path[0] == "partners":
        return "partner"
    if len(path) >= 1 and path[0] == "summary":
        return "summary"
    return "couple"


def _problem(err: ErrorDetails) -> Problem:
    path: Path = tuple(err["loc"])
    kind, msg = err["type"], err["msg"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = str(path[-1])
        close = get_close_matches(key, _FIELDS[_level(path[:-1])], n=1, cutoff=0.6)
        hint = f" — did you mean {close[0]!r}?" if close else ""
        return Problem(path, f"unknown key {key!r}{hint}")
    if kind == "missing" and path == ("partners", 1):
        return Problem(path, "a couple has exactly two partners; the second is missing")
    if kind == "missing":
        return Problem(path, "is required")
    if kind == "enum" and path and path[-1] == "kind":
        kinds = [k.value for k in RitualKind]
        close = get_close_matches(str(value), kinds, n=1)
        hint = f" — did you mean {close[0]!r}?" if close else f"; kinds are {', '.join(kinds)}"
        return Problem(path, f"unknown kind {value!r}{hint}")
    if kind == "string_pattern_mismatch" and path and path[-1] == "phone":
        return Problem(path, f"{value!r} is not a phone number in E.164, like +15551234567")
    if kind == "string_pattern_mismatch" and path and path[-1] in ("id", "couple"):
        return Problem(path, f"{value!r} must be lower-case letters, digits, '-' or '_'")
    if kind == "model_type" and path == ("summary",):
        return Problem(path, f"{value!r} is not a time of the week; write it like "
                             "{day: sunday, at: '19:00'}")  # fmt: skip
    if kind in ("tuple_type", "too_short", "too_long") and path == ("partners",):
        return Problem(path, "a couple has exactly two partners")
    msg = msg.removeprefix("Value error, ")
    return Problem(path, msg)


def _without_noise(problems: list[Problem]) -> list[Problem]:
    """Drop "is required" for fields a ritual's kind would have filled, had the kind been valid."""
    bad_kind = {p.path[:2] for p in problems if p.path[2:] == ("kind",)}
    return [
        p
        for p in problems
        if not (
            p.path[:2] in bad_kind
            and len(p.path) == 3
            and p.path[2] != "kind"
            and p.message == "is required"
        )
    ]


def _raw_duplicate_ids(raw: Mapping[str, Any]) -> list[Problem]:
    """Duplicate ritual ids, found even when other problems keep the model from validating."""
    rituals = raw.get("rituals")
    if not isinstance(rituals, list):
        return []
    seen: dict[object, int] = {}
    out = []
    for i, ritual in enumerate(rituals):
        if not isinstance(ritual, Mapping):
            continue
        rid = ritual.get("id", ritual.get("kind"))
        if not isinstance(rid, str):
            continue
        if rid in seen:
            out.append(_duplicate(i, rid, seen[rid]))
        seen.setdefault(rid, i)
    return out


def _duplicate(i: int, rid: str, first: int) -> Problem:
    return Problem(
        ("rituals", i, "id"),
        f"{rid!r} is already the id of rituals[{first}]; give each ritual of the same kind "
        "its own `id`",
    )


def _cross_checks(couple: Couple) -> list[Problem]:
    problems: list[Problem] = []
    first, second = couple.partners
    if first.key == second.key:
        problems.append(
            Problem(("partners", 1, "name"), f"both partners are called {first.name!r}")
        )
    if first.phone == second.phone:
        problems.append(Problem(("partners", 1, "phone"), "both partners have the same phone"))
    seen: dict[str, int] = {}
    for i, ritual in enumerate(couple.rituals):
        if ritual.id in seen:
            problems.append(_duplicate(i, ritual.id, seen[ritual.id]))
        seen.setdefault(ritual.id, i)
        problems.extend(_ritual_checks(couple, i, ritual))
    problems.extend(_feed_check(couple))
    return problems


def _feed_check(couple: Couple) -> list[Problem]:
    """A feed shows every calendar ritual at least 8 weeks ahead (and 30 days back): that
    much must fit the events calendar apps keep, or they would drop some silently."""
    span = FEED_LIMITS.past + FEED_LIMITS.floor
    shown = [r for r in couple.rituals if r.calendar and r.enabled]
    most = sum(most_occurrences(r.recurrence, span) for r in shown)
    if most <= FEED_LIMITS.events:
        return []
    return [
        Problem(
            ("rituals",),
            f"the {len(shown)} calendar rituals can put {most} events in a calendar feed from "
            f"30 days back to 8 weeks ahead, more than the {FEED_LIMITS.events:,} calendar "
            "apps keep: take `calendar` out of some rituals' `channels`",
        )
    ]


def _reveal_checks(ritual: Ritual, at: Path) -> list[Problem]:
    """``reveal: true`` needs answers to reveal: a kind whose replies are journal answers, one
    occurrence both partners answer, and texts to carry them."""
    if not ritual.reveal:
        return []
    where = (*at, "reveal")
    if not ritual.journal:
        askers = ", ".join(k.value for k, d in KIND_DEFAULTS.items() if d.journal)
        return [
            Problem(
                where,
                f"only rituals that ask a question can reveal answers; a {ritual.kind.value} "
                f"reply is not kept as an answer (these can: {askers})",
            )
        ]
    if ritual.partner_local:
        shared = "a partner-local ritual has one occurrence per partner: nothing to reveal"
        return [Problem(where, shared)]
    if not ritual.sms:
        return [Problem(where, "answers are revealed by text: add `sms` to `channels`")]
    return []


def _ritual_checks(couple: Couple, i: int, ritual: Ritual) -> list[Problem]:
    out: list[Problem] = []
    at: Path = ("rituals", i)
    if ritual.partner_local and ritual.who is not Who.EACH:
        out.append(Problem((*at, "partner_local"), "only `who: each` rituals can be partner-local"))
    if ritual.partner_local and ritual.timezone is not None:
        out.append(Problem((*at, "timezone"), "a partner-local ritual uses each partner's zone"))
    if ritual.start and ritual.end and ritual.end < ritual.start:
        out.append(Problem((*at, "end"), f"ends ({ritual.end}) before it starts ({ritual.start})"))
    if len(set(ritual.channels)) != len(ritual.channels):
        out.append(Problem((*at, "channels"), "a channel is listed twice"))
    if len(set(ritual.remind)) != len(ritual.remind):
        out.append(Problem((*at, "remind"), "a reminder is listed twice"))
    if ritual.remind and not ritual.sms:
        out.append(Problem((*at, "remind"), "reminders are texts: add `sms` to `channels`"))
    out.extend(_reveal_checks(ritual, at))
    longest = max(len(p.name) for p in couple.partners)
    for field in RitualTexts.model_fields:
        text = getattr(ritual.texts, field)
        if text is None:
            continue
        if "{planner}" in text and ritual.who is not Who.ALTERNATING:
            out.append(
                Problem((*at, "texts", field), "{planner} needs `who: alternating`"),
            )
        if field != "description" and len(text) + 3 * longest > 320:
            out.append(
                Problem(
                    (*at, "texts", field),
                    f"{len(text)} characters is too long for a text message; keep it under "
                    "320 with names filled in",
                )
            )
    return out
