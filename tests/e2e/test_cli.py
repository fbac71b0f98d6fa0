"""The real ``hearth`` console script, run as a user runs it, from the repository root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from service.config.loading import load_couple_file
from service.domain.kinds import RitualKind
from tests.couple_texts import VALID

ROOT = Path(__file__).resolve().parents[2]
HEARTH = Path(sys.executable).with_name("hearth")
EXAMPLES_DIR = ROOT / "config" / "couples"
EXAMPLES = sorted(EXAMPLES_DIR.glob("*.yaml"))
ALL_KINDS = EXAMPLES_DIR / "all-kinds.yaml"

OCCURRENCE_KEYS = {
    "occurrence_id",
    "couple",
    "ritual",
    "kind",
    "start",
    "end",
    "timezone",
    "calendar",
}
SEND_KEYS = {"event_id", "partner", "at", "purpose"}

GOOD = VALID  # the smallest valid couple file, shared with the loading tests


def hearth(*args: str | Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    return subprocess.run(
        [str(HEARTH), *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _json(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, list)
    return data


def _instant(value: object) -> datetime:
    assert isinstance(value, str)
    at = datetime.fromisoformat(value)
    assert at.tzinfo is not None, f"{value} has no UTC offset"
    return at


def _ny_couple(tmp_path: Path, schedule: str) -> Path:
    path = tmp_path / "ny.yaml"
    path.write_text(
        GOOD.replace("Europe/Berlin", "America/New_York").replace("every day at 21:00", schedule),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def all_kinds_week() -> list[dict[str, object]]:
    return _json(
        hearth("preview", ALL_KINDS, "--from", "2026-11-01", "--to", "2026-11-08", "--json")
    )


# --- validate ----------------------------------------------------------------------------


def test_validate_without_arguments_checks_every_example_in_config_couples() -> None:
    result = hearth("validate")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"OK {p.relative_to(ROOT)}" for p in EXAMPLES]


def test_validate_each_example_by_path_passes() -> None:
    result = hearth("validate", *EXAMPLES)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [f"OK {p}" for p in EXAMPLES]


def test_validate_good_and_bad_files_prints_ok_and_located_errors_and_exits_1(
    tmp_path: Path,
) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        GOOD.replace("Europe/Berlin", "Europe/Berln").replace("schedule:", "shedule:"),
        encoding="utf-8",
    )

    result = hearth("validate", good, bad)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"OK {good}" in lines
    assert f"OK {bad}" not in lines
    error_lines = [line for line in lines if not line.startswith("OK ")]
    pattern = re.compile(rf"^{re.escape(str(bad))}:\d+:\d+: [^:]+: .+$")
    assert len(error_lines) == 2
    assert all(pattern.match(line) for line in error_lines), error_lines
    assert any(": timezone: " in line and "Europe/Berlin" in line for line in error_lines)
    assert any(": rituals[0].shedule: " in line for line in error_lines)


def test_validate_a_directory_reports_the_broken_file_and_oks_the_rest(tmp_path: Path) -> None:
    (tmp_path / "fine.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("timezone: [\n", encoding="utf-8")

    result = hearth("validate", tmp_path)

    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert f"OK {tmp_path / 'fine.yaml'}" in lines
    assert f"OK {tmp_path / 'broken.yaml'}" not in lines
    assert any(line.startswith(f"{tmp_path / 'broken.yaml'}:") for line in lines)


_LONG_REMINDER = """\
  - kind: date_night
    schedule: every other friday at 19:30
    remind: [2d]
    texts:
      reminder: "Date night with {other} is {lead} ({time}). {planner} plans this one, so think
        about what you would love to do together, and tell them by tonight."
"""


def _moon_couple(directory: Path) -> Path:
    path = directory / "alex-sam.yaml"
    text = GOOD.replace("name: Sam", 'name: "Sam \U0001f319"') + _LONG_REMINDER
    path.write_text(text, encoding="utf-8")
    return path


def test_validate_warns_about_each_text_over_two_segments_and_still_exits_0(
    tmp_path: Path,
) -> None:
    path = _moon_couple(tmp_path)

    result = hearth("validate", path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        f"OK {path}",
        f"warning: {path}: date_night reminder-2d to alex: 3 segments "
        '(UCS-2: "\U0001f319" in the text); keep texts within 2',
    ]


def test_validate_a_directory_warns_under_the_files_ok_line(tmp_path: Path) -> None:
    path = _moon_couple(tmp_path)
    (tmp_path / "fine.yaml").write_text(GOOD, encoding="utf-8")

    result = hearth("validate", tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"OK {path}"
    assert lines[1].startswith(f"warning: {path}: date_night reminder-2d to alex: 3 segments")
    assert lines[2:] == [f"OK {tmp_path / 'fine.yaml'}"]


def test_validate_warns_about_a_long_gsm7_text_with_its_length(tmp_path: Path) -> None:
    path = tmp_path / "long.yaml"
    path.write_text(
        GOOD + '    texts:\n      prompt: "{partner}, ' + "\u20ac" * 150 + '"\n', encoding="utf-8"
    )

    result = hearth("validate", path)

    assert result.returncode == 0, result.stdout + result.stderr
    # The euro sign takes two septets: "Alex, " and 150 of them take three segments, "Sam, "
    # and 150 two (a two-septet character is never split across segments).
    assert result.stdout.splitlines() == [
        f"OK {path}",
        f"warning: {path}: check_in prompt to alex: 3 segments (GSM-7, 156 characters); "
        "keep texts within 2",
    ]


# --- preview -----------------------------------------------------------------------------


def test_preview_json_is_sorted_by_start_with_local_offsets(
    all_kinds_week: list[dict[str, object]],
) -> None:
    assert all_kinds_week
    starts = []
    for item in all_kinds_week:
        assert set(item) >= OCCURRENCE_KEYS, item
        assert item["couple"] == "riley-and-jordan"
        assert isinstance(item["timezone"], str)
        tz = ZoneInfo(item["timezone"])
        start, end = _instant(item["start"]), _instant(item["end"])
        assert start.utcoffset() == start.astimezone(tz).utcoffset(), item
        assert end.utcoffset() == end.astimezone(tz).utcoffset(), item
        assert end > start
        starts.append(start)
    assert starts == sorted(starts)


def test_preview_json_for_the_long_distance_couple_uses_each_partners_zone() -> None:
    items = _json(
        hearth(
            "preview",
            EXAMPLES_DIR / "mia-and-jon.yaml",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-08",
            "--json",
        )
    )

    zones = {item["timezone"] for item in items}
    assert zones == {"Australia/Sydney", "Europe/London"}
    starts = [_instant(item["start"]) for item in items]
    assert starts == sorted(starts)
    for item, start in zip(items, starts, strict=True):
        assert isinstance(item["timezone"], str)
        assert start.utcoffset() == start.astimezone(ZoneInfo(item["timezone"])).utcoffset()


def test_preview_reads_a_spring_forward_gap_time_with_the_offset_before_it(
    tmp_path: Path,
) -> None:
    path = _ny_couple(tmp_path, "every day at 02:30")

    items = _json(hearth("preview", path, "--from", "2026-03-07", "--to", "2026-03-10", "--json"))

    ny = ZoneInfo("America/New_York")
    starts = [_instant(item["start"]) for item in items]
    per_day = Counter(s.astimezone(ny).date() for s in starts)
    assert per_day == {date(2026, 3, 7): 1, date(2026, 3, 8): 1, date(2026, 3, 9): 1}
    [gap_day] = [s for s in starts if s.astimezone(ny).date() == date(2026, 3, 8)]
    assert gap_day.isoformat() == "2026-03-08T03:30:00-04:00"
    assert gap_day == datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


def test_preview_takes_the_first_of_a_fall_back_repeated_time(tmp_path: Path) -> None:
    path = _ny_couple(tmp_path, "every day at 01:30")

    items = _json(hearth("preview", path, "--from", "2026-10-31", "--to", "2026-11-03", "--json"))

    ny = ZoneInfo("America/New_York")
    starts = [_instant(item["start"]) for item in items]
    on_the_day = [s for s in starts if s.astimezone(ny).date() == date(2026, 11, 1)]
    assert len(on_the_day) == 1
    assert on_the_day[0].isoformat() == "2026-11-01T01:30:00-04:00"
    assert on_the_day[0] == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    assert Counter(s.astimezone(ny).date() for s in starts) == {
        date(2026, 10, 31): 1,
        date(2026, 11, 1): 1,
        date(2026, 11, 2): 1,
    }


def test_preview_prompts_json_lists_reminders_and_the_prompt_of_a_date_night(
    tmp_path: Path,
) -> None:
    path = tmp_path / "dn.yaml"
    path.write_text(
        GOOD.replace("kind: check_in", "kind: date_night")
        .replace("every day at 21:00", "every friday at 19:30")
        .replace("at 19:30\n", "at 19:30\n    remind: [2d, 3h]\n"),
        encoding="utf-8",
    )

    sends = _json(
        hearth("preview", path, "--from", "2026-11-01", "--to", "2026-11-08", "--prompts", "--json")
    )

    assert sends
    for send in sends:
        assert set(send) >= SEND_KEYS, send
        _instant(send["at"])
    assert {s["purpose"] for s in sends} == {"reminder-2d", "reminder-3h", "prompt"}
    assert {s["partner"] for s in sends} == {"alex", "sam"}
    date_night = datetime(2026, 11, 6, 19, 30, tzinfo=ZoneInfo("Europe/Berlin"))
    at = {(s["purpose"], s["partner"]): _instant(s["at"]) for s in sends}
    assert at["reminder-2d", "alex"] == date_night - timedelta(days=2)
    assert at["reminder-3h", "sam"] == date_night - timedelta(hours=3)
    assert at["prompt", "alex"] == date_night
    assert len({s["event_id"] for s in sends}) == len(sends)


def test_preview_without_json_prints_one_line_per_occurrence(
    all_kinds_week: list[dict[str, object]],
) -> None:
    result = hearth("preview", ALL_KINDS, "--from", "2026-11-01", "--to", "2026-11-08")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == len(all_kinds_week)
    for line, item in zip(lines, all_kinds_week, strict=True):
        assert isinstance(item["occurrence_id"], str)
        assert item["occurrence_id"] in line
        assert str(item["ritual"]) in line


def test_preview_with_an_unreadable_from_exits_2_naming_the_option() -> None:
    result = hearth("preview", ALL_KINDS, "--from", "yesterday")

    assert result.returncode == 2
    assert "--from" in result.stderr
    assert "'yesterday'" in result.stderr
    assert result.stdout == ""


def test_preview_rejects_an_instant_without_utc_offset() -> None:
    result = hearth("preview", ALL_KINDS, "--from", "2026-11-01", "--to", "2026-11-02T10:00:00")

    assert result.returncode == 2
    assert "--to" in result.stderr
    assert "offset" in result.stderr
    assert result.stdout == ""


# --- schema and the committed examples ----------------------------------------------------


def test_schema_command_prints_the_committed_schema() -> None:
    result = hearth("schema")

    assert result.returncode == 0, result.stderr
    committed = json.loads((ROOT / "schema" / "couple.schema.json").read_text(encoding="utf-8"))
    assert json.loads(result.stdout) == committed, (
        "schema/couple.schema.json is stale: regenerate it with `hearth schema`"
    )


def test_every_example_points_editors_at_the_schema_on_its_first_line() -> None:
    assert len(EXAMPLES) >= 3
    for example in EXAMPLES:
        first = example.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("# yaml-language-server: $schema="), example.name
        target = first.split("$schema=", 1)[1].strip()
        assert (example.parent / target).resolve() == ROOT / "schema" / "couple.schema.json"


def test_one_example_uses_all_ten_ritual_kinds() -> None:
    kinds = [{r.kind for r in load_couple_file(p).rituals} for p in EXAMPLES]

    assert len(RitualKind) == 10
    assert set(RitualKind) in kinds


def test_one_example_is_a_couple_nine_or_more_hours_apart_all_year() -> None:
    def smallest_gap(path: Path) -> timedelta:
        couple = load_couple_file(path)
        first, second = (couple.partner_zone(p) for p in couple.partners)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        gaps = []
        for hour in range(365 * 24):
            instant = start + timedelta(hours=hour)
            a, b = instant.astimezone(first).utcoffset(), instant.astimezone(second).utcoffset()
            assert a is not None
            assert b is not None
            gaps.append(abs(a - b))
        return min(gaps)

    gaps = {p.name: smallest_gap(p) for p in EXAMPLES}

    assert any(gap >= timedelta(hours=9) for gap in gaps.values()), gaps


# --- help --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [("--help",), ("validate", "--help"), ("preview", "--help"), ("schema", "--help")],
    ids=["hearth", "validate", "preview", "schema"],
)
def test_help_exits_0_and_describes_usage(args: tuple[str, ...]) -> None:
    result = hearth(*args)

    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


@pytest.mark.parametrize("example", ["alex-and-sam.yaml", "all-kinds.yaml", "mia-and-jon.yaml"])
def test_feed_export_has_exactly_the_calendar_occurrences_of_preview(example: str) -> None:
    """`hearth feed export FILE` and `hearth preview FILE --json` from the same expansion:
    every calendar occurrence once, at the same instants, and nothing else."""
    import icalendar
    import recurring_ical_events

    path = ROOT / "config" / "couples" / example
    exported = subprocess.run(
        [str(HEARTH), "feed", "export", str(path)], capture_output=True, timeout=60, check=True
    ).stdout
    today = datetime.now(UTC).date()
    start, end = today + timedelta(days=1), today + timedelta(days=390)
    preview = _json(hearth("preview", path, "--json", "--from", str(start), "--to", str(end)))
    partner = yaml.safe_load(path.read_text())["partners"][0]["name"].lower()
    expected = sorted(
        (str(o["occurrence_id"]), _instant(o["start"]), _instant(o["end"]))
        for o in preview
        if o["calendar"] and o["partner"] in (None, partner)
    )
    lo = datetime.combine(start, datetime.min.time(), UTC)
    hi = datetime.combine(end, datetime.min.time(), UTC)
    events = recurring_ical_events.of(icalendar.Calendar.from_ical(exported)).between(lo, hi)
    found = sorted(
        (str(e["UID"]).removesuffix("@hearth"), e["DTSTART"].dt.astimezone(UTC),
         e["DTEND"].dt.astimezone(UTC))
        for e in events
        if lo <= e["DTSTART"].dt < hi
    )  # fmt: skip
    assert expected, "the example has calendar rituals"
    assert found == expected


def test_feed_rotate_takes_one_partner_or_all() -> None:
    from typer.testing import CliRunner

    from service.cli.app import app

    usage = "error: give COUPLE PARTNER (one partner's URL) or --all (every partner's)\n"
    for args, message in (
        ((), usage),
        (("alex-and-sam",), usage),
        (("--all", "alex-and-sam"), "error: give either --all or COUPLE PARTNER, not both\n"),
    ):
        result = CliRunner().invoke(app, ["feed", "rotate", *args])
        assert result.exit_code == 1, args
        assert result.stderr == message, args


# --- a bad environment -------------------------------------------------------------------

SETTINGS_COMMANDS = [
    ("validate",),
    ("migrate",),
    ("run",),
    ("scheduler",),
    ("worker",),
    ("web",),
    ("fire", "alex-and-sam", "check_in"),
    ("reply", "--from", "+4915112340002", "DONE"),
    ("feed", "urls"),
    ("feed", "rotate", "alex-and-sam", "Alex"),
    ("feed", "export", "alex-and-sam"),
]


@pytest.mark.parametrize("args", SETTINGS_COMMANDS, ids=lambda a: "-".join(a[:2]))
def test_every_command_that_reads_settings_names_each_bad_variable_in_one_line_and_exits_2(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    env |= {
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "HEARTH_GRACE_PROMPT": "banana",
        "HEARTH_PROMPT_LEASE_S": "-1",
    }
    result = subprocess.run(
        [str(HEARTH), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip

    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("error: bad settings: ")
    assert "HEARTH_GRACE_PROMPT: 'banana' is not a duration" in line
    assert "HEARTH_PROMPT_LEASE_S: Input should be greater than 0 (it is '-1')" in line
    assert not (tmp_path / "var").exists(), "nothing was started or created"


@pytest.mark.parametrize(
    "args", [("schema",), ("preview", EXAMPLES[0]), ("validate", EXAMPLES[0])],
    ids=["schema", "preview", "validate-file"],
)  # fmt: skip
def test_commands_that_read_no_settings_ignore_a_bad_environment(args: tuple[str, ...]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEARTH_")}
    result = subprocess.run(
        [str(HEARTH), *map(str, args)], cwd=ROOT, env=env | {"HEARTH_GRACE_PROMPT": "banana"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
