"""What partners did to single occurrences: skipped one, or moved it to another start.

A change keeps the occurrence's id (replies, completions and the feed's UID stay attached to
it) and changes only when it happens or whether it happens. The expansion in
``occurrences.py`` applies changes, so the SMS schedule and the calendar feed agree on them.
A moved occurrence's sends carry its new start in their event ids (``prompt@…``), so a
move re-plans its prompt and reminders as new events instead of colliding with the ones
already fired for the old start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import TypeAlias

__all__ = ["NO_CHANGES", "Change", "Changes"]


@dataclass(frozen=True, slots=True)
class Change:
    """One occurrence's change; ``moved_to`` is aware, and ignored when ``skipped``."""

    occurrence_id: str
    skipped: bool = False
    moved_to: datetime | None = None

    def __post_init__(self) -> None:
        if self.moved_to is not None and self.moved_to.utcoffset() is None:
            raise ValueError("moved_to must be an aware datetime")


# Occurrence id -> its change.
Changes: TypeAlias = Mapping[str, Change]

NO_CHANGES: Changes = MappingProxyType({})
