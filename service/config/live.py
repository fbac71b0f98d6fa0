"""The config directory as it is now: edits picked up without a restart, bad edits survived.

``refresh()`` stats the directory's couple files and reloads only those whose size or
modification time changed. A file that turns bad is logged with every issue (file, line,
column, field) and its couple keeps running on the last good version; a file that is removed
takes its couple with it. Polling a few hundred stat calls is cheaper and more portable than
inotify, and needs no extra dependency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service.config.loading import couple_files, load_couple_file
from service.domain.errors import CoupleFileInvalid

if TYPE_CHECKING:
    from pathlib import Path

    from service.domain.couples import Couple, Partner

__all__ = ["LiveConfig", "Refresh"]

log = logging.getLogger("hearth.config")


@dataclass
class Refresh:
    """What one ``refresh()`` changed."""

    changed: list[str] = field(default_factory=list)  # couple ids loaded anew or edited
    removed: list[str] = field(default_factory=list)
    failures: list[CoupleFileInvalid] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.changed or self.removed)


@dataclass
class _File:
    stamp: tuple[int, int]  # (mtime_ns, size)
    couple: Couple | None  # the last good version, if there ever was one


class LiveConfig:
    """The couples of a directory, kept current by ``refresh()``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._files: dict[Path, _File] = {}
        self._couples: dict[str, Couple] = {}
        self._phones: dict[str, list[tuple[Couple, Partner]]] = {}

    @property
    def couples(self) -> dict[str, Couple]:
        """Every couple that has a good version, by id (first file wins on a clash)."""
        return dict(self._couples)

    def get(self, couple_id: str) -> Couple | None:
        """One couple; a dictionary lookup, however many couples there are (workers call it
        for every send)."""
        return self._couples.get(couple_id)

    def by_phone(self, phone: str) -> list[tuple[Couple, Partner]]:
        """The partners with this number (E.164), with their couples; usually one or none."""
        return list(self._phones.get(phone, ()))

    def _index_phones(self) -> None:
        phones: dict[str, list[tuple[Couple, Partner]]] = {}
        for couple in self._couples.values():
            for partner in couple.partners:
                phones.setdefault(partner.phone, []).append((couple, partner))
        self._phones = phones

    def _index(self) -> dict[str, Couple]:
        out: dict[str, Couple] = {}
        for path in sorted(self._files):
            couple = self._files[path].couple
            if couple is not None:
                out.setdefault(couple.id, couple)
        return out

    def refresh(self) -> Refresh:
        """Reload what changed on disk since the last call; never raises for a bad file."""
        result = Refresh()
        try:
            present = {p: p.stat() for p in couple_files(self.directory)}
        except OSError as e:
            log.error(
                "cannot read config directory %s: %s; keeping what is loaded", self.directory, e
            )
            return result
        gone = set(self._files) - set(present)
        for path in gone:
            del self._files[path]
        touched = bool(gone)
        for path, st in present.items():
            stamp = (st.st_mtime_ns, st.st_size)
            known = self._files.get(path)
            if known is not None and known.stamp == stamp:
                continue
            touched = True
            try:
                couple: Couple | None = load_couple_file(path)
            except CoupleFileInvalid as e:
                result.failures.append(e)
                last = known.couple if known else None
                log.error(
                    "%s is invalid; %s\n%s",
                    path,
                    f"keeping the last good version of {last.id!r}" if last else "not loaded",
                    e,
                )
                couple = last
            self._files[path] = _File(stamp, couple)
        if not touched:
            return result  # the common case, every few seconds: nothing to rebuild
        before = self._couples  # replaced below, never mutated
        self._couples = after = self._index()
        self._index_phones()
        result.removed = sorted(set(before) - set(after))
        result.changed = sorted(c for c in after if before.get(c) != after[c])
        return result
