"""Loading couple files: one file, or a whole directory where a bad file stops no other."""

from __future__ import annotations

import gc
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from service.config.yaml_source import locate, parse
from service.domain.couples import Couple, build_couple
from service.domain.errors import CoupleFileInvalid, CoupleInvalid, Issue

__all__ = ["LoadedConfig", "couple_files", "load_couple_file", "load_directory"]

SUFFIXES = (".yaml", ".yml")


@dataclass
class LoadedConfig:
    """The couples that loaded, by id, and the files that did not, with all their issues."""

    couples: dict[str, Couple] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)  # couple id -> its file
    failures: list[CoupleFileInvalid] = field(default_factory=list)


def couple_files(directory: Path) -> list[Path]:
    """The couple files in ``directory``, sorted by name; hidden and editor backup files skipped."""
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in SUFFIXES and p.is_file() and not p.name.startswith((".", "#", "~"))
    )


def load_couple_file(path: Path) -> Couple:
    """Read and validate one couple file; ``CoupleFileInvalid`` lists every issue in it."""
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise CoupleFileInvalid(name, [Issue(name, 1, 1, "(file)", f"cannot read: {e}")]) from None
    return load_couple_text(text, name, default_id=path.stem)


def load_couple_text(text: str, name: str, default_id: str | None = None) -> Couple:
    """Validate a couple file's ``text``; ``name`` is how issues refer to the file."""
    try:
        doc = parse(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(e, "problem", None) or str(e)
        raise CoupleFileInvalid(name, [Issue(name, line, col, "(yaml)", problem)]) from None
    issues = [
        Issue(
            name,
            d.line,
            d.column,
            d.key,
            f"{d.key!r} is given twice (first on line {d.first_line})",
        )
        for d in doc.duplicates
    ]
    if doc.data is None:
        issues.append(Issue(name, 1, 1, "(file)", "the file is empty"))
        raise CoupleFileInvalid(name, issues)
    try:
        couple = build_couple(doc.data, default_id=default_id)
    except CoupleInvalid as e:
        places = locate(text, [problem.path for problem in e.problems])
        for problem, (line, col) in zip(e.problems, places, strict=True):
            issues.append(Issue(name, line, col, problem.dotted_path, problem.message))
        issues.sort(key=lambda i: (i.line, i.column))
        raise CoupleFileInvalid(name, issues) from None
    if issues:
        raise CoupleFileInvalid(name, issues)
    return couple


def load_directory(directory: Path) -> LoadedConfig:
    """Load every couple file in ``directory``; each failure is recorded, none stops the rest."""
    # Loading allocates many small objects that all live on; the cyclic collector would scan
    # them again and again (a fifth of load time at 10,000 couples) for no garbage.
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _load_all(directory)
    finally:
        if collecting:
            gc.enable()


def _load_all(directory: Path) -> LoadedConfig:
    loaded = LoadedConfig()
    for path in couple_files(directory):
        try:
            couple = load_couple_file(path)
        except CoupleFileInvalid as e:
            loaded.failures.append(e)
            continue
        if couple.id in loaded.couples:
            other = loaded.files[couple.id]
            issue = Issue(
                str(path), 1, 1, "couple", f"{couple.id!r} is already the couple in {other}"
            )
            loaded.failures.append(CoupleFileInvalid(str(path), [issue]))
            continue
        loaded.couples[couple.id] = couple
        loaded.files[couple.id] = path
    return loaded
