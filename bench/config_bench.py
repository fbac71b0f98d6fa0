"""Benchmark: load + validate + plan 7 days for N couple files (default 10,000).

What it measures
    1. Generates N realistic couple files (seeded, deterministic) in a temporary directory:
       every couple uses all ten ritual kinds, friendly schedules in the forms of
       ``service.domain.schedules.EXAMPLES`` (and raw RRULEs for some custom rituals), unique
       E.164 phones, partners in many IANA zones (DST-hard ones included), quiet hours,
       reminders, partner-local rituals. Generation is not timed.
    2. In a fresh child process (so the generator's memory is not counted): imports the
       service, notes the baseline RSS, then times ``load_directory`` (read + YAML parse +
       validate) and planning of ``occurrences`` and ``planned_sends`` for the fixed window
       [2026-11-25T00:00Z, +7 days) for every couple, keeping the loaded couples alive.
       Peak RSS is ``ru_maxrss``. Every file must load; any failure aborts the bench.
    3. In a second fresh child: the same work split into phases (read files, YAML parse,
       ``build_couple``, occurrences, sends) to show where the time goes.
    4. With ``--profile``: the same work under pyinstrument, in this process, and the top of
       its call tree and of its flat self-time list.

Targets (from the requirement): <= 5 s wall and <= 10 KiB of RSS per couple, on 2 cores.

Run
    .venv/bin/python bench/config_bench.py                  # 10,000 couples
    .venv/bin/python bench/config_bench.py --couples 2000 --profile
    .venv/bin/python bench/config_bench.py --keep /tmp/hearth-couples   # keep the files
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config.loading import LoadedConfig

WINDOW_START = datetime(2026, 11, 25, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=7)
TARGET_SECONDS = 5.0
TARGET_KIB_PER_COUPLE = 10.0
DEFAULT_SEED = 20261125

KINDS = (
    "check_in",
    "date_night",
    "phone_free",
    "gratitude",
    "affection",
    "listening",
    "touch_map",
    "conversation",
    "growth",
    "custom",
)

# (zone, mobile prefix in E.164). The DST-hard ones: half-hour DST (Lord_Howe), :45 offsets
# (Chatham, Kathmandu, Eucla), -2:30 DST (St_Johns), negative DST (Dublin), Ramadan DST
# (Casablanca), +14 (Kiritimati), -11 (Pago_Pago), midnight transitions (Havana, Azores,
# Asuncion, Beirut), 2h DST (Troll), abolished DST (Sao_Paulo).
ZONES: tuple[tuple[str, str], ...] = (
    ("Australia/Lord_Howe", "+614"),
    ("Pacific/Chatham", "+6421"),
    ("America/St_Johns", "+1709"),
    ("Europe/Dublin", "+35385"),
    ("Africa/Casablanca", "+2126"),
    ("Pacific/Kiritimati", "+6867"),
    ("Pacific/Pago_Pago", "+1684"),
    ("Asia/Kathmandu", "+97798"),
    ("America/Sao_Paulo", "+5511"),
    ("America/Havana", "+535"),
    ("America/Asuncion", "+59598"),
    ("Atlantic/Azores", "+35191"),
    ("Asia/Beirut", "+9613"),
    ("Antarctica/Troll", "+4794"),
    ("Australia/Eucla", "+618"),
    ("America/Santiago", "+569"),
    ("Pacific/Apia", "+6857"),
    ("America/Nuuk", "+2995"),
    ("Asia/Tehran", "+98912"),
    ("Europe/Berlin", "+49151"),
    ("Europe/London", "+447700"),
    ("Europe/Paris", "+336"),
    ("Europe/Madrid", "+346"),
    ("Europe/Moscow", "+7916"),
    ("America/New_York", "+1212"),
    ("America/Chicago", "+1312"),
    ("America/Denver", "+1303"),
    ("America/Phoenix", "+1602"),
    ("America/Los_Angeles", "+1415"),
    ("America/Toronto", "+1416"),
    ("America/Halifax", "+1902"),
    ("America/Mexico_City", "+5255"),
    ("Africa/Johannesburg", "+2782"),
    ("Africa/Lagos", "+23480"),
    ("Asia/Dubai", "+97150"),
    ("Asia/Kolkata", "+9198"),
    ("Asia/Shanghai", "+86138"),
    ("Asia/Singapore", "+658"),
    ("Asia/Tokyo", "+8190"),
    ("Australia/Sydney", "+614"),
    ("Australia/Adelaide", "+614"),
    ("Pacific/Auckland", "+6422"),
)

NAMES = (
    "Alex", "Sam", "Riley", "Jordan", "Mia", "Jon", "Ana", "Ben", "Chloé", "Dev", "Emeka",
    "Fatima", "Grace", "Hiro", "Ines", "Jamal", "Kai", "Lena", "Marco", "Nadia", "Omar",
    "Priya", "Quinn", "Rosa", "Søren", "Tariq", "Uma", "Viktor", "Wen", "Ximena", "Yusuf",
    "Zoë", "Siobhán", "Ana-María", "Mateus", "Aroha", "Tevita", "Sina", "Bikash", "Youssef",
    "Aoife", "Noor", "Lucía", "Kalani", "Tane", "Mere", "Camila", "Ravi", "Hana", "Leilani",
)  # fmt: skip

DAY_SPELLINGS = (
    ("mon", "monday", "mo"),
    ("tue", "tuesday", "tues"),
    ("wed", "wednesday", "weds"),
    ("thu", "thursday", "thurs"),
    ("fri", "friday", "fridays"),
    ("sat", "saturday", "saturdays"),
    ("sun", "sunday", "sundays"),
)
ORDINALS = ("first", "second", "third", "fourth", "last", "1st", "2nd", "3rd")
MONTH_DAYS = ("1st", "2nd", "5th", "10th", "15th", "20th", "28th", "last")

QUIET_HOURS = (
    "22:30-07:00", "23:00-07:30", "22:00-06:30", "23:30-08:00", "22:00 - 07:00",
    "21:30–06:30", "00:00-07:00", "22:30 to 07:30", "13:00-14:00", "23:00-09:00",
)  # fmt: skip
REMINDS = (("1h",), ("2d", "3h"), ("1d",), ("1w", "1d", "1h"), ("30m",), ("2 hours",), ("3h",))
DURATIONS = ("10m", "15m", "45m", "1h", "1h30m", "90m", "2h", "PT1H", "PT20M", "2 hours")
CUSTOM_IDS = ("sunday-walk", "cook-together", "budget-talk", "tea", "dance", "pillow-talk")
RAW_RULES = (
    ("FREQ=WEEKLY;BYDAY=SU;BYHOUR=10;BYMINUTE=30", None),
    ("FREQ=MONTHLY;BYDAY=-1FR;BYHOUR=18;BYMINUTE=0", None),
    ("FREQ=WEEKLY;INTERVAL=2;BYDAY=WE", "7:30pm"),
    ("FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=14", "19:00"),
    ("FREQ=DAILY;INTERVAL=3;BYHOUR=20;BYMINUTE=15", None),
    ("FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=-1;BYHOUR=17;BYMINUTE=30", None),
    ("RRULE:FREQ=WEEKLY;BYDAY=TU,TH;BYHOUR=6;BYMINUTE=45", None),
)
PROMPTS = (
    "Hey {partner}, time to put the kettle on with {other}.",
    "{partner}: ten minutes with {other}, no phones. Reply DONE after.",
    "It's {time}, {partner}. {other} is waiting - go say hi.",
    "Small thing, {partner}: tell {other} one thing you noticed today.",
)
TITLES = ("Time with {other}", "Our ritual", "{other} and me", "Together time")
CUSTOM_NAMES = ("Sunday walk", "Cook together", "Budget talk", "Tea", "Dance", "Pillow talk")

# Hour ranges that suit each kind (local time).
KIND_HOURS: dict[str, tuple[int, int]] = {
    "check_in": (19, 22),
    "date_night": (18, 21),
    "phone_free": (17, 21),
    "gratitude": (8, 20),
    "affection": (6, 9),
    "listening": (18, 21),
    "touch_map": (20, 22),
    "conversation": (17, 20),
    "growth": (17, 21),
    "custom": (6, 21),
}


# --- generation --------------------------------------------------------------------------


def _slug(name: str) -> str:
    """Partner key, as ``service.domain.couples.Partner.key`` computes it."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "partner"


def _time(rng: random.Random, kind: str) -> str:
    low, high = KIND_HOURS[kind]
    hour = rng.randint(low, high)
    minute = rng.choice((0, 0, 0, 30, 30, 15, 45))
    style = rng.random()
    if style < 0.55:
        return f"{hour:02d}:{minute:02d}"
    if style < 0.7:
        return f"{hour}:{minute:02d}"
    if style < 0.9:
        h12 = hour % 12 or 12
        suffix = "pm" if hour >= 12 else "am"
        return f"{h12}{suffix}" if minute == 0 else f"{h12}:{minute:02d}{suffix}"
    return f"{hour}h{minute:02d}"


def _day(rng: random.Random, weekday: int | None = None) -> str:
    return rng.choice(DAY_SPELLINGS[rng.randrange(7) if weekday is None else weekday])


def _what(rng: random.Random, form: str) -> str:
    """The days part of one friendly form (one per EXAMPLES entry, plus a few more)."""
    if form == "daily":
        return rng.choice(("every day", "daily", "each day", "everyday"))
    if form == "every_n_days":
        n = rng.choice(("2", "3", "two", "other"))
        return "every other day" if n == "other" else f"every {n} days"
    if form == "weekdays":
        return rng.choice(("weekdays", "every weekday", "on weekdays"))
    if form == "weekends":
        return rng.choice(("weekends", "every weekend", "on weekends"))
    if form == "days":
        picked = sorted(rng.sample(range(7), rng.randint(1, 4)))
        sep = rng.choice((", ", " and ", " & ", ","))
        words = sep.join(_day(rng, d) for d in picked)
        return rng.choice(("", "every ", "on ")) + words
    if form == "every_other":
        return f"every other {_day(rng)}"
    if form == "every_n_weeks":
        return f"every {rng.choice(('2', '3', 'two', '4'))} weeks on {_day(rng)}"
    if form == "weekly_on":
        return f"{rng.choice(('weekly', 'every week'))} on {_day(rng)}"
    if form == "nth_weekday":
        return f"{rng.choice(ORDINALS)} {_day(rng)} of the month"
    if form == "month_day":
        nth = rng.choice(MONTH_DAYS)
        if rng.random() < 0.5:
            return f"monthly on the {nth}" + (" day" if nth == "last" else "")
        return f"the {nth}" + (" day" if nth == "last" else "") + " of every month"
    if form == "times_a_week":
        return f"{rng.choice(('2', '3', '4', 'twice', 'three', 'five'))} times a week"
    raise AssertionError(form)


# Which forms suit which kind; ``custom`` may use any.
KIND_FORMS: dict[str, tuple[str, ...]] = {
    "check_in": ("daily", "weekdays", "days", "every_n_days"),
    "date_night": ("every_other", "every_n_weeks", "nth_weekday", "weekly_on", "days"),
    "phone_free": ("daily", "weekdays", "weekends", "days"),
    "gratitude": ("times_a_week", "days", "daily", "weekdays"),
    "affection": ("daily", "weekdays", "weekends"),
    "listening": ("weekly_on", "days", "every_other"),
    "touch_map": ("every_other", "every_n_weeks", "nth_weekday"),
    "conversation": ("nth_weekday", "month_day", "every_n_weeks"),
    "growth": ("month_day", "nth_weekday"),
    "custom": (
        "daily", "every_n_days", "weekdays", "weekends", "days", "every_other",
        "every_n_weeks", "weekly_on", "nth_weekday", "month_day", "times_a_week",
    ),
}  # fmt: skip


def _schedule(rng: random.Random, kind: str) -> str:
    what = _what(rng, rng.choice(KIND_FORMS[kind]))
    if rng.random() < 0.05:
        what = what.capitalize()
    return f"{what} at {_time(rng, kind)}"


def _ritual(rng: random.Random, kind: str, rid: str | None = None) -> dict[str, object]:
    """One ritual's mapping, valid by construction (the bench checks it loads)."""
    r: dict[str, object] = {} if rid is None else {"id": rid}
    r["kind"] = kind
    _when(rng, kind, r)
    partner_local = _who(rng, kind, r)
    _delivery(rng, r)
    if not partner_local and rng.random() < 0.08:
        r["timezone"] = rng.choice(ZONES)[0]
    if rng.random() < 0.15:
        r["start"] = date(2024, 1, 1) + timedelta(days=rng.randrange(1050))
    if rng.random() < 0.1:
        r["end"] = date(2027, 1, 1) + timedelta(days=rng.randrange(700))
    if rng.random() < 0.03:
        r["enabled"] = False
    texts: dict[str, object] = {}
    if kind == "custom" or rng.random() < 0.15:
        texts["prompt"] = rng.choice(PROMPTS)
        if rng.random() < 0.5:
            texts["title"] = rng.choice(TITLES)
    if kind == "date_night" and "who" not in r and rng.random() < 0.2:
        texts["title"] = "Date night ({planner} plans)"
    if texts:
        r["texts"] = texts
    return r


def _when(rng: random.Random, kind: str, r: dict[str, object]) -> None:
    """Name and schedule (a friendly form, a raw RRULE, or the kind's default)."""
    if kind == "custom":
        r["name"] = rng.choice(CUSTOM_NAMES)
        if rng.random() < 0.3:
            rule, at = rng.choice(RAW_RULES)
            r["rrule"] = rule
            if at is not None:
                r["at"] = at
        else:
            r["schedule"] = _schedule(rng, kind)
    else:
        if rng.random() < 0.15:
            r["name"] = rng.choice(("evening check", "our time", "us", "the thing we do"))
        if rng.random() < 0.8:
            r["schedule"] = _schedule(rng, kind)


def _who(rng: random.Random, kind: str, r: dict[str, object]) -> bool:
    """Who takes part; partner-local only with who: each. True when partner-local."""
    default_each = kind in ("gratitude", "affection")
    who_each = default_each
    if kind in ("check_in", "custom") and rng.random() < 0.2:
        r["who"] = "each"
        who_each = True
    if who_each:
        if rng.random() < 0.5:
            r["partner_local"] = True
        elif default_each and rng.random() < 0.3:
            r["partner_local"] = False
    return who_each and r.get("partner_local", default_each) is True


def _delivery(rng: random.Random, r: dict[str, object]) -> None:
    """Channels, reminders (which need sms) and duration."""
    sms = True
    if rng.random() < 0.15:
        channels = rng.choice((("sms",), ("calendar", "sms"), ("calendar",)))
        r["channels"] = list(channels)
        sms = "sms" in channels
    if not sms:
        r["remind"] = []
    elif rng.random() < 0.3:
        r["remind"] = list(rng.choice(REMINDS))
    if rng.random() < 0.3:
        r["duration"] = rng.choice(DURATIONS)


_PLAIN = re.compile(r"[A-Za-z0-9][\w ,.:;=/&–-]*[\w.]|[A-Za-z0-9]")
_RESERVED = {"true", "false", "yes", "no", "on", "off", "null", "y", "n"}


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    plain = (
        _PLAIN.fullmatch(text)
        and ": " not in text
        and text.lower() not in _RESERVED
        and not re.fullmatch(r"[-+0-9.]+", text)
    )
    return text if plain else json.dumps(text, ensure_ascii=False)


def _emit(key: str, value: object, indent: str) -> list[str]:
    if isinstance(value, dict):
        lines = [f"{indent}{key}:"]
        for k, v in value.items():
            lines.extend(_emit(k, v, indent + "  "))
        return lines
    if isinstance(value, list):
        return [f"{indent}{key}: [{', '.join(_scalar(v) for v in value)}]"]
    return [f"{indent}{key}: {_scalar(value)}"]


def _couple_text(rng: random.Random, index: int, phones: Callable[[str], str]) -> tuple[str, str]:
    """One couple file's (file stem, YAML text)."""
    zone, prefix = rng.choice(ZONES)
    first = rng.choice(NAMES)
    second = rng.choice(NAMES)
    while _slug(second) == _slug(first):
        second = rng.choice(NAMES)
    stem = f"{index:05d}-{_slug(first)}-and-{_slug(second)}"
    lines = [
        "# yaml-language-server: $schema=../../schema/couple.schema.json",
        f"# Generated by bench/config_bench.py: couple {index}.",
    ]
    if rng.random() < 0.5:
        lines.append(f"couple: c{index:05d}-{_slug(first)}-{_slug(second)}")
    lines.append(f"timezone: {zone}")
    lines.append("partners:")
    far_zone, far_prefix = rng.choice(ZONES) if rng.random() < 0.3 else (zone, prefix)
    for name, pzone, pprefix in ((first, zone, prefix), (second, far_zone, far_prefix)):
        lines.append(f"  - name: {_scalar(name)}")
        lines.append(f"    phone: {_scalar(phones(pprefix))}")
        if pzone != zone or rng.random() < 0.1:
            lines.append(f"    timezone: {pzone}")
        if rng.random() < 0.6:
            lines.append(f"    quiet_hours: {_scalar(rng.choice(QUIET_HOURS))}")
    lines.append("rituals:")
    rituals = [_ritual(rng, kind) for kind in KINDS]
    if rng.random() < 0.2:
        rituals.append(_ritual(rng, "custom", rid=rng.choice(CUSTOM_IDS)))
    rng.shuffle(rituals)
    for ritual in rituals:
        items = list(ritual.items())
        head_key, head_value = items[0]
        lines.append(f"  - {head_key}: {_scalar(head_value)}")
        for k, v in items[1:]:
            lines.extend(_emit(k, v, "    "))
    return stem, "\n".join(lines) + "\n"


@dataclass
class Generated:
    files: int
    total_bytes: int
    distinct_schedules: int
    zones: int


def generate(directory: Path, count: int, seed: int) -> Generated:
    """Write ``count`` couple files into ``directory``; deterministic for a given seed."""
    rng = random.Random(seed)
    issued: set[str] = set()
    serial = 0

    def phone(prefix: str) -> str:
        nonlocal serial
        serial += 1
        number = f"{prefix}{serial:07d}"  # fixed-width suffix: unique across prefixes
        if number in issued:
            raise AssertionError(f"phone {number} issued twice")
        issued.add(number)
        return number

    total = 0
    schedules: set[str] = set()
    zones: set[str] = set()
    for i in range(count):
        stem, text = _couple_text(rng, i, phone)
        data = text.encode("utf-8")
        (directory / f"{stem}.yaml").write_bytes(data)
        total += len(data)
        schedules.update(re.findall(r"^\s+schedule: (.*)$", text, re.MULTILINE))
        zones.update(re.findall(r"timezone: (\S+)$", text, re.MULTILINE))
    return Generated(count, total, len(schedules), len(zones))


# --- the measured work ---------------------------------------------------------------------


def _maxrss_kib() -> int:
    """Peak RSS of this process so far, in KiB (``ru_maxrss`` is KiB on Linux)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def _current_rss_kib() -> int:
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return _maxrss_kib()
    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def plan_occurrences(loaded: LoadedConfig) -> int:
    """Occurrences in the window for every couple (the target's "plan"); results discarded."""
    from service.domain.occurrences import occurrences

    return sum(len(occurrences(c, WINDOW_START, WINDOW_END)) for c in loaded.couples.values())


def plan_sends(loaded: LoadedConfig) -> int:
    """The texts those occurrences imply (not part of the target; reported beside it)."""
    from service.domain.sends import planned_sends

    return sum(len(planned_sends(c, WINDOW_START, WINDOW_END)) for c in loaded.couples.values())


def verify(loaded: LoadedConfig, expected: int) -> None:
    """Fail loudly unless every file loaded, as a couple with all ten kinds."""
    if loaded.failures:
        shown = "\n".join(str(f) for f in loaded.failures[:5])
        raise SystemExit(
            f"FAIL: {len(loaded.failures)} generated file(s) did not validate, e.g.:\n{shown}"
        )
    if len(loaded.couples) != expected:
        raise SystemExit(f"FAIL: {len(loaded.couples)} couples loaded, {expected} generated")
    for couple in loaded.couples.values():
        kinds = {r.kind.value for r in couple.rituals}
        if kinds != set(KINDS):
            raise SystemExit(f"FAIL: {couple.id} lacks kinds {sorted(set(KINDS) - kinds)}")


@dataclass
class Measurement:
    couples: int
    wall_s: float
    cpu_s: float
    load_s: float
    plan_s: float
    occurrences: int
    sends: int
    baseline_kib: int
    after_load_kib: int
    peak_kib: int
    retained_kib: int  # current RSS at the end, couples still alive
    sends_s: float  # planned_sends for the window, after the measured work
    gc_s: float
    gc_runs: int


def child_measure(directory: Path, expected: int) -> Measurement:
    from service.config.loading import load_directory

    gc_time = 0.0
    gc_runs = 0
    gc_started = 0.0

    def on_gc(phase: str, info: dict[str, int]) -> None:
        nonlocal gc_time, gc_runs, gc_started
        if phase == "start":
            gc_started = time.perf_counter()
        else:
            gc_time += time.perf_counter() - gc_started
            gc_runs += 1

    baseline = _maxrss_kib()
    gc.callbacks.append(on_gc)
    t0, c0 = time.perf_counter(), time.process_time()
    loaded = load_directory(directory)
    t1 = time.perf_counter()
    after_load = _maxrss_kib()
    n_occ = plan_occurrences(loaded)
    t2, c2 = time.perf_counter(), time.process_time()
    gc.callbacks.remove(on_gc)
    peak = _maxrss_kib()
    n_sends = plan_sends(loaded)
    sends_s = time.perf_counter() - t2
    retained = _current_rss_kib()
    verify(loaded, expected)  # after the clock stops; loaded stays alive until here
    return Measurement(
        couples=len(loaded.couples),
        wall_s=t2 - t0,
        cpu_s=c2 - c0,
        load_s=t1 - t0,
        plan_s=t2 - t1,
        sends_s=sends_s,
        occurrences=n_occ,
        sends=n_sends,
        baseline_kib=baseline,
        after_load_kib=after_load,
        peak_kib=peak,
        retained_kib=retained,
        gc_s=gc_time,
        gc_runs=gc_runs,
    )


def child_phases(directory: Path) -> dict[str, float]:
    """The same work, phase by phase, in a fresh process (cold caches, like the measurement)."""
    from service.config.loading import couple_files
    from service.config.yaml_source import parse
    from service.domain.couples import build_couple
    from service.domain.occurrences import occurrences
    from service.domain.sends import planned_sends

    out: dict[str, float] = {}
    t = time.perf_counter()
    paths = couple_files(directory)
    texts = [p.read_text(encoding="utf-8") for p in paths]
    out["read files"] = time.perf_counter() - t

    t = time.perf_counter()
    docs = [parse(text) for text in texts]
    out["YAML parse (yaml_source.parse)"] = time.perf_counter() - t

    t = time.perf_counter()
    couples = [build_couple(d.data, default_id=p.stem) for d, p in zip(docs, paths, strict=True)]
    out["validate (couples.build_couple)"] = time.perf_counter() - t

    t = time.perf_counter()
    for couple in couples:
        occurrences(couple, WINDOW_START, WINDOW_END)
    out["plan occurrences (7 days)"] = time.perf_counter() - t

    t = time.perf_counter()
    for couple in couples:
        planned_sends(couple, WINDOW_START, WINDOW_END)
    out["plan sends (7 days)"] = time.perf_counter() - t
    return out


def _run_child(mode: str, directory: Path, couples: int) -> str:
    cmd = [sys.executable, __file__, "--child", mode, "--dir", str(directory)]
    cmd += ["--couples", str(couples)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"FAIL: the {mode} child exited with {proc.returncode}")
    return proc.stdout.strip().splitlines()[-1]


# --- reporting ----------------------------------------------------------------------------


def _table(rows: Sequence[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows)
    vwidth = max(len(v) for _, v in rows)
    rule = f"+-{'-' * width}-+-{'-' * vwidth}-+"
    body = [f"| {k:<{width}} | {v:>{vwidth}} |" for k, v in rows]
    return "\n".join([rule, *body, rule])


def report(gen: Generated, m: Measurement) -> None:
    n = m.couples
    net_per = (m.peak_kib - m.baseline_kib) / n
    wall_ok = m.wall_s <= TARGET_SECONDS
    mem_ok = net_per <= TARGET_KIB_PER_COUPLE
    rows = [
        ("couples", f"{n:,}"),
        ("files' total bytes", f"{gen.total_bytes:,} ({gen.total_bytes / n:,.0f}/file)"),
        ("wall s (load+validate+plan 7 days)", f"{m.wall_s:.2f}"),
        ("  of which load+validate s", f"{m.load_s:.2f}"),
        ("  of which plan occurrences s", f"{m.plan_s:.2f}"),
        ("planned_sends s (not in the target)", f"{m.sends_s:.2f}"),
        ("  cpu s / gc s (runs)", f"{m.cpu_s:.2f} / {m.gc_s:.2f} ({m.gc_runs})"),
        ("couples/s", f"{n / m.wall_s:,.0f}"),
        ("occurrences (7 days)", f"{m.occurrences:,}"),
        ("sends (7 days)", f"{m.sends:,}"),
        ("baseline RSS MiB (after imports)", f"{m.baseline_kib / 1024:.1f}"),
        ("peak RSS MiB after load", f"{m.after_load_kib / 1024:.1f}"),
        ("peak RSS MiB", f"{m.peak_kib / 1024:.1f}"),
        ("RSS MiB at end (couples alive)", f"{m.retained_kib / 1024:.1f}"),
        ("KiB/couple (peak - baseline)", f"{net_per:.2f}"),
        ("KiB/couple (peak / N)", f"{m.peak_kib / n:.2f}"),
        (f"target wall <= {TARGET_SECONDS:g} s", "MET" if wall_ok else "NOT MET"),
        (f"target <= {TARGET_KIB_PER_COUPLE:g} KiB/couple", "MET" if mem_ok else "NOT MET"),
    ]
    print(_table(rows))


def report_phases(phases: dict[str, float], n: int) -> None:
    total = sum(phases.values())
    rows = [
        (name, f"{s:6.2f} s {100 * s / total:5.1f}% {1e6 * s / n:7.0f} us/couple")
        for name, s in phases.items()
    ]
    rows.append(("total", f"{total:6.2f} s {100.0:5.1f}% {1e6 * total / n:7.0f} us/couple"))
    print(_table(rows))


def profile(directory: Path, couples: int, lines: int) -> None:
    from pyinstrument import Profiler

    from service.config.loading import load_directory

    profiler = Profiler(interval=0.001)
    profiler.start()
    loaded = load_directory(directory)
    plan_occurrences(loaded)
    plan_sends(loaded)
    profiler.stop()
    verify(loaded, couples)
    tree = profiler.output_text(unicode=False, color=False, show_all=False)
    print("\n--- pyinstrument call tree (top) ---")
    print("\n".join(tree.splitlines()[:lines]))
    flat = profiler.output_text(unicode=False, color=False, flat=True, flat_time="self")
    print("\n--- pyinstrument flat, by self time (top) ---")
    print("\n".join(flat.splitlines()[: max(lines // 2, 30)]))


# --- entry point --------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--couples", type=int, default=10_000, help="how many couple files")
    parser.add_argument("--keep", type=Path, help="generate into DIR and keep it")
    parser.add_argument("--profile", action="store_true", help="also profile with pyinstrument")
    parser.add_argument("--profile-lines", type=int, default=70, help="lines of profile output")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--child", choices=("measure", "phases"), help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.couples < 1:
        parser.error("--couples must be at least 1")

    if args.child is not None:
        assert args.dir is not None
        result: object = (
            asdict(child_measure(args.dir, args.couples))
            if args.child == "measure"
            else child_phases(args.dir)
        )
        print(json.dumps(result))
        return

    if args.keep is not None:
        directory: Path = args.keep
        directory.mkdir(parents=True, exist_ok=True)
        if any(directory.iterdir()):
            parser.error(f"--keep {directory}: the directory is not empty")
    else:
        directory = Path(tempfile.mkdtemp(prefix="hearth-bench-"))
    try:
        t = time.perf_counter()
        gen = generate(directory, args.couples, args.seed)
        print(
            f"generated {gen.files:,} couple files in {time.perf_counter() - t:.1f} s "
            f"(not measured): {gen.distinct_schedules:,} distinct schedule texts, "
            f"{gen.zones} zones; seed {args.seed}; dir {directory}"
        )
        print(
            f"window {WINDOW_START:%Y-%m-%dT%H:%MZ} + 7 days; single process; "
            f"{os.cpu_count()} cores; Python {sys.version.split()[0]}\n"
        )
        m = Measurement(**json.loads(_run_child("measure", directory, args.couples)))
        print("all files validated; every couple has all ten kinds\n")
        report(gen, m)
        phases = json.loads(_run_child("phases", directory, args.couples))
        print("\nphase breakdown (separate fresh process):")
        report_phases(phases, args.couples)
        if args.profile:
            profile(directory, args.couples, args.profile_lines)
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
