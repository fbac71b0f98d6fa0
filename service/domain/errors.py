"""The errors Hearth raises, each carrying what a person needs to fix the cause.

    HearthError
    ├── CoupleInvalid      a couple's description breaks a rule; carries every Problem found
    ├── CoupleFileInvalid  a couple file is unreadable or invalid; every Issue with its line
    └── WhenInvalid        a date or instant given on the command line cannot be read

Adapters turn library exceptions into these at the boundary; the domain raises only these
(or plain ``ValueError`` inside pydantic validators, which pydantic turns into a Problem).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["CoupleFileInvalid", "CoupleInvalid", "HearthError", "Issue", "Problem", "WhenInvalid"]

Path: TypeAlias = tuple[str | int, ...]


class HearthError(Exception):
    """Root of every error Hearth raises on purpose."""


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a couple's description, at ``path`` (``("rituals", 2, "schedule")``)."""

    path: Path
    message: str

    @property
    def dotted_path(self) -> str:
        """The path as a person writes it: ``rituals[2].schedule``."""
        return format_path(self.path)


class CoupleInvalid(HearthError):
    """A couple's description is invalid; ``problems`` lists all of them, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.dotted_path}: {p.message}" for p in problems))


@dataclass(frozen=True, slots=True)
class Issue:
    """A problem pinned to a place in a file; ``str()`` is ``file:line:col: path: message``."""

    file: str
    line: int  # 1-based
    column: int  # 1-based
    path: str  # rituals[2].schedule
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.path}: {self.message}"


class CoupleFileInvalid(HearthError):
    """A couple file cannot be used; ``issues`` lists every problem found in it."""

    def __init__(self, file: str, issues: list[Issue]) -> None:
        self.file = file
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class WhenInvalid(HearthError):
    """A date or instant could not be read."""


def format_path(path: Path) -> str:
    """``("rituals", 2, "schedule")`` -> ``rituals[2].schedule``; the empty path is ``(file)``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out or "(file)"
