"""Loading couple files from disk: every problem pinned to its file, line, column and field."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.config.loading import load_couple_file, load_couple_text, load_directory
from service.config.yaml_source import parse
from service.domain.couples import Couple
from service.domain.errors import CoupleFileInvalid, Issue
from service.domain.quiet_hours import QuietHours
from tests.couple_texts import VALID

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config" / "couples").glob("*.yaml"))


def _write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def _issues(path: Path) -> list[Issue]:
    with pytest.raises(CoupleFileInvalid) as caught:
        load_couple_file(path)
    assert caught.value.file == str(path)
    assert caught.value.issues, "an invalid file must come with at least one issue"
    return caught.value.issues


def _line_of(text: str, needle: str) -> int:
    """1-based number of the (only) line containing ``needle``."""
    lines = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    assert len(lines) == 1, f"{needle!r} should be on exactly one line"
    return lines[0]


# --- valid files ----------------------------------------------------------------------


def test_valid_file_loads_with_the_couple_id_taken_from_the_file_name(tmp_path: Path) -> None:
    couple = load_couple_file(_write(tmp_path, "pat-and-lee.yaml", VALID))

    assert isinstance(couple, Couple)
    assert couple.id == "pat-and-lee"
    assert couple.timezone == "Europe/Berlin"
    assert [p.name for p in couple.partners] == ["Alex", "Sam"]
    assert [r.id for r in couple.rituals] == ["check_in"]


def test_couple_key_in_the_file_overrides_the_file_name(tmp_path: Path) -> None:
    couple = load_couple_file(_write(tmp_path, "pat-and-lee.yaml", "couple: lee-and-pat\n" + VALID))

    assert couple.id == "lee-and-pat"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_every_committed_example_loads(example: Path) -> None:
    couple = load_couple_file(example)

    assert couple.rituals


# --- one problem, pinned to its place ---------------------------------------------------


def test_misspelt_schedule_is_reported_at_its_ritual_with_the_close_spelling(
    tmp_path: Path,
) -> None:
    text = VALID + "  - kind: date_night\n    schedule: every othr friday at 19:30\n"
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "rituals[1].schedule"
    assert issue.line == _line_of(text, "every othr friday")
    assert issue.column == 5
    assert "did you mean 'every other friday at 19:30'" in issue.message
    assert str(issue).startswith(f"{path}:{issue.line}:5: rituals[1].schedule: ")


def test_unknown_key_is_reported_with_line_column_and_suggestion(tmp_path: Path) -> None:
    text = VALID.replace("    schedule: every day", "    shedule: every day")
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "rituals[0].shedule"
    assert (issue.line, issue.column) == (_line_of(text, "shedule"), 5)
    assert "unknown key 'shedule'" in issue.message
    assert "did you mean 'schedule'" in issue.message


def test_unknown_top_level_key_points_at_column_one(tmp_path: Path) -> None:
    text = VALID.replace("partners:", "partner:")
    path = _write(tmp_path, "c.yaml", text)

    issues = _issues(path)

    unknown = [i for i in issues if i.path == "partner"]
    assert len(unknown) == 1
    assert (unknown[0].line, unknown[0].column) == (2, 1)
    assert "did you mean 'partners'" in unknown[0].message


def test_unknown_time_zone_is_named_and_the_close_zone_suggested(tmp_path: Path) -> None:
    text = VALID.replace("Europe/Berlin", "Europe/Berln")
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "timezone"
    assert issue.line == 1
    assert "'Europe/Berln'" in issue.message
    assert "did you mean 'Europe/Berlin'" in issue.message


def test_time_zone_in_the_wrong_case_is_told_zone_names_are_case_sensitive(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "c.yaml", VALID.replace("Europe/Berlin", "europe/berlin"))

    [issue] = _issues(path)

    assert issue.path == "timezone"
    assert "did you mean 'Europe/Berlin'" in issue.message
    assert "case-sensitive" in issue.message


# --- many problems at once ---------------------------------------------------------------


def test_every_problem_in_a_file_is_reported_at_once_sorted_by_line(tmp_path: Path) -> None:
    text = """\
timezone: Mars/Olympus
partners:
  - name: Alex
    phone: "12345"
  - name: Sam
    name: Samantha
    phone: "+4915112340002"
rituals:
  - kind: check_in
    schedule: every othr day at 21:00
  - kind: dating_night
  - kind: gratitude
    colour: blue
"""
    path = _write(tmp_path, "c.yaml", text)

    issues = _issues(path)

    by_path = {i.path: i for i in issues}
    assert set(by_path) == {
        "timezone",
        "partners[0].phone",
        "name",
        "rituals[0].schedule",
        "rituals[1].kind",
        "rituals[2].colour",
    }
    assert by_path["timezone"].line == 1
    assert by_path["partners[0].phone"].line == _line_of(text, '"12345"')
    assert by_path["name"].line == _line_of(text, "Samantha")
    assert by_path["rituals[0].schedule"].line == _line_of(text, "every othr day")
    assert by_path["rituals[1].kind"].line == _line_of(text, "dating_night")
    assert "did you mean 'date_night'" in by_path["rituals[1].kind"].message
    assert by_path["rituals[2].colour"].line == _line_of(text, "colour")
    lines = [(i.line, i.column) for i in issues]
    assert lines == sorted(lines)


def test_unknown_kind_does_not_add_noise_about_fields_the_kind_would_fill(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "c.yaml", VALID + "  - kind: dating_night\n")

    issues = _issues(path)

    assert [i.path for i in issues] == ["rituals[1].kind"]


def test_ritual_without_a_kind_is_reported_as_missing_its_kind(tmp_path: Path) -> None:
    text = VALID + "  - name: walk\n    schedule: every day at 10:00\n"
    path = _write(tmp_path, "c.yaml", text)

    issues = _issues(path)

    assert [i.path for i in issues] == ["rituals[1].kind"]
    assert issues[0].line == _line_of(text, "name: walk")
    assert "required" in issues[0].message


# --- duplicates ------------------------------------------------------------------------


def test_duplicate_yaml_key_is_reported_with_both_lines(tmp_path: Path) -> None:
    text = VALID.replace("rituals:\n", "timezone: Europe/Paris\nrituals:\n")
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    second = _line_of(text, "Europe/Paris")
    assert issue.path == "timezone"
    assert (issue.line, issue.column) == (second, 1)
    assert "given twice" in issue.message
    assert "first on line 1" in issue.message


def test_two_rituals_of_one_kind_without_ids_are_reported_at_the_second_ones_id(
    tmp_path: Path,
) -> None:
    text = VALID + "  - kind: check_in\n    schedule: every day at 08:00\n"
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "rituals[1].id"
    assert issue.line == _line_of(text, "every day at 08:00") - 1
    assert "'check_in' is already the id of rituals[0]" in issue.message


def test_duplicate_ritual_ids_are_reported_even_alongside_other_problems(
    tmp_path: Path,
) -> None:
    text = VALID.replace("Europe/Berlin", "Nowhere/Town") + "  - kind: check_in\n"
    path = _write(tmp_path, "c.yaml", text)

    issues = _issues(path)

    assert {i.path for i in issues} == {"timezone", "rituals[1].id"}


# --- files that are not a couple at all --------------------------------------------------


def test_yaml_syntax_error_is_reported_with_its_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "timezone: Europe/Berlin\npartners: x: y\n")

    [issue] = _issues(path)

    assert issue.path == "(yaml)"
    assert (issue.line, issue.column) == (2, 12)
    assert "mapping values are not allowed" in issue.message


def test_unclosed_flow_sequence_is_reported_after_the_line_that_opened_it(
    tmp_path: Path,
) -> None:
    path = _write(tmp_path, "c.yaml", "timezone: Europe/Berlin\nrituals: [check_in, date_night\n")

    [issue] = _issues(path)

    assert issue.path == "(yaml)"
    assert (issue.line, issue.column) == (3, 1)
    assert "did not find expected ',' or ']'" in issue.message


@pytest.mark.parametrize("text", ["", "\n\n   \n", "# just a comment\n"])
def test_empty_file_is_reported_as_empty(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert (issue.line, issue.column, issue.path) == (1, 1, "(file)")
    assert "empty" in issue.message


def test_top_level_list_is_reported_as_not_a_mapping(tmp_path: Path) -> None:
    path = _write(tmp_path, "c.yaml", "- timezone: Europe/Berlin\n- partners: []\n")

    [issue] = _issues(path)

    assert (issue.line, issue.column, issue.path) == (1, 1, "(file)")
    assert "mapping" in issue.message


def test_file_that_is_not_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes(b"timezone: Europe/Berlin\nname: \xff\xfe\n")

    [issue] = _issues(path)

    assert (issue.line, issue.column, issue.path) == (1, 1, "(file)")
    assert "cannot read" in issue.message


# --- YAML 1.2 scalars --------------------------------------------------------------------


def test_unquoted_times_and_windows_stay_strings_not_sexagesimal_numbers() -> None:
    doc = parse("quiet_hours: 22:30-07:30\nat: 19:30\nlate: 1:05\n")

    assert doc.data == {"quiet_hours": "22:30-07:30", "at": "19:30", "late": "1:05"}


def test_unquoted_quiet_hours_and_at_load_as_a_window_and_a_time(tmp_path: Path) -> None:
    text = VALID.replace(
        '"+4915112340001"\n', '"+4915112340001"\n    quiet_hours: 22:30-07:30\n'
    ) + ("  - kind: custom\n    rrule: FREQ=WEEKLY;BYDAY=SU\n    at: 19:30\n")

    couple = load_couple_file(_write(tmp_path, "c.yaml", text))

    assert couple.partners[0].quiet_hours == QuietHours(time(22, 30), time(7, 30))
    assert couple.ritual("custom").at == time(19, 30)


@pytest.mark.parametrize("word", ["No", "Yes", "no", "on", "Off", "y", "N"])
def test_yes_no_words_stay_strings_the_norway_problem(tmp_path: Path, word: str) -> None:
    text = VALID.replace("name: Alex", f"name: {word}")

    couple = load_couple_file(_write(tmp_path, "c.yaml", text))

    assert couple.partners[0].name == word


def test_only_true_and_false_are_booleans() -> None:
    doc = parse("a: true\nb: False\nc: yes\nd: 12\ne: 1.5\nf: 0x1F\ng: 1_000\n")

    assert doc.data == {
        "a": True,
        "b": False,
        "c": "yes",
        "d": 12,
        "e": 1.5,
        "f": "0x1F",
        "g": "1_000",
    }


# --- values that must be reported, never raised ----------------------------------------


def test_impossible_calendar_date_is_reported_not_raised(tmp_path: Path) -> None:
    text = VALID + "    start: 2026-02-30\n"
    path = _write(tmp_path, "c.yaml", text)

    issues = _issues(path)

    assert any(i.line == _line_of(text, "2026-02-30") for i in issues)


def test_absurdly_long_duration_is_reported_not_raised(tmp_path: Path) -> None:
    text = VALID + "    duration: 99999999999999h\n"
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "rituals[0].duration"
    assert issue.line == _line_of(text, "99999999999999h")


def test_schedule_repeating_every_zero_days_is_rejected(tmp_path: Path) -> None:
    text = VALID.replace("every day at 21:00", "every 0 days at 21:00")
    path = _write(tmp_path, "c.yaml", text)

    [issue] = _issues(path)

    assert issue.path == "rituals[0].schedule"
    assert issue.line == _line_of(text, "every 0 days")


def test_duration_in_a_valid_file_is_read_in_friendly_units(tmp_path: Path) -> None:
    text = VALID + "    duration: 1h30m\n"

    couple = load_couple_file(_write(tmp_path, "c.yaml", text))

    assert couple.rituals[0].duration == timedelta(hours=1, minutes=30)


# --- directories -------------------------------------------------------------------------


def test_broken_file_in_a_directory_stops_none_of_the_good_ones(tmp_path: Path) -> None:
    _write(tmp_path, "ann-and-bo.yaml", VALID)
    broken = _write(tmp_path, "bad.yaml", VALID.replace("Europe/Berlin", "Europe/Berln"))
    _write(tmp_path, "cy-and-di.yaml", VALID)

    loaded = load_directory(tmp_path)

    assert set(loaded.couples) == {"ann-and-bo", "cy-and-di"}
    assert loaded.files["cy-and-di"] == tmp_path / "cy-and-di.yaml"
    [failure] = loaded.failures
    assert failure.file == str(broken)
    assert [i.path for i in failure.issues] == ["timezone"]
    assert failure.issues[0].file == str(broken)


def test_second_file_claiming_a_couple_id_fails_naming_the_first(tmp_path: Path) -> None:
    first = _write(tmp_path, "a.yaml", "couple: same\n" + VALID)
    second = _write(tmp_path, "b.yaml", "couple: same\n" + VALID)

    loaded = load_directory(tmp_path)

    assert list(loaded.couples) == ["same"]
    assert loaded.files["same"] == first
    [failure] = loaded.failures
    assert failure.file == str(second)
    [issue] = failure.issues
    assert issue.path == "couple"
    assert "'same'" in issue.message
    assert str(first) in issue.message


def test_file_name_id_clashing_with_a_declared_id_is_a_failure(tmp_path: Path) -> None:
    _write(tmp_path, "a.yaml", "couple: zed\n" + VALID)
    clash = _write(tmp_path, "zed.yaml", VALID)

    loaded = load_directory(tmp_path)

    assert list(loaded.couples) == ["zed"]
    assert [f.file for f in loaded.failures] == [str(clash)]


def test_hidden_and_backup_files_are_ignored_and_yml_is_accepted(tmp_path: Path) -> None:
    for name in (".x.yaml", "#x.yaml#", "x.yaml~", "notes.txt", "~x.yaml"):
        _write(tmp_path, name, "this: [is not, a couple\n")
    _write(tmp_path, "short.yml", VALID)
    (tmp_path / "sub.yaml").mkdir()

    loaded = load_directory(tmp_path)

    assert loaded.failures == []
    assert list(loaded.couples) == ["short"]


def test_empty_directory_loads_nothing_and_fails_nothing(tmp_path: Path) -> None:
    loaded = load_directory(tmp_path)

    assert loaded.couples == {}
    assert loaded.failures == []


# --- whatever the text, a Couple or issues, never a crash ---------------------------------

_EXAMPLE_TEXTS = [p.read_text(encoding="utf-8") for p in EXAMPLES]


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(_EXAMPLE_TEXTS))
    lines = text.splitlines(keepends=True)
    how = draw(st.sampled_from(["delete", "duplicate", "replace", "truncate", "insert"]))
    if how == "delete":
        del lines[draw(st.integers(0, len(lines) - 1))]
        return "".join(lines)
    if how == "duplicate":
        i = draw(st.integers(0, len(lines) - 1))
        lines.insert(draw(st.integers(0, len(lines))), lines[i])
        return "".join(lines)
    at = draw(st.integers(0, len(text) - 1))
    if how == "replace":
        return text[:at] + draw(st.characters(exclude_categories=["Cs"])) + text[at + 1 :]
    if how == "truncate":
        return text[:at]
    yamlish = st.text(alphabet=st.sampled_from(list(":-[]{}#&*!|>'\"%@`, \n\t0123456789abz")))
    inserted = draw(st.one_of(yamlish, st.text(max_size=20)))
    return text[:at] + inserted + text[at:]


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(text=_mutated())
def test_any_mutation_of_an_example_loads_or_gives_located_issues(text: str) -> None:
    try:
        couple = load_couple_text(text, "mutant.yaml", default_id="mutant")
    except CoupleFileInvalid as e:
        assert e.issues
        for issue in e.issues:
            assert issue.file == "mutant.yaml"
            assert issue.line >= 1
            assert issue.column >= 1
            assert issue.message.strip()
            assert issue.path
    else:
        assert isinstance(couple, Couple)
