"""The config directory as it is now: edits picked up without a restart, bad edits survived.

``refresh()`` stats the directory's couple files and reloads only those whose size or
modification time changed. A file that turns bad is logged with every issue (file, line,
column, field) and its couple keeps running on the last good version; a file that is removed
takes its couple with it.

The last good version is shared by every process (``LastGood``, kept in Redis by the
runtime): each good file's text is saved as it is loaded, so a process that starts while a
file is broken runs what the others run, instead of nothing. Polling a few hundred stat
calls is cheaper and more portable than inotify, and needs no extra dependency.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Protocol

from service.config.loading import couple_files, load_couple_text
from service.domain.errors import CoupleFileInvalid, HearthError, Issue
from service.redaction import redact_failure

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from service.domain.couples import Couple, Partner

__all__ = ["LastGood", "LiveConfig", "Refresh"]

log = logging.getLogger("hearth.config")


@dataclass
class Refresh:
    """What one ``refresh()`` changed."""

    changed: list[str] = field(default_factory=list)  # couple ids loaded anew or edited
    removed: list[str] = field(default_factory=list)
    failures: list[CoupleFileInvalid] = field(default_factory=list)
    # Couples whose file was read again though its description came out the same: it may
    # have changed and changed back between two reads, and another process may have acted
    # on the version in between (a scheduler planning it).
    reread: list[str] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.changed or self.removed)


def _forget(shared: LastGood, name: str) -> None:
    shared.forget(name)


class LastGood(Protocol):
    """The last good text of each couple file, by file name, shared across processes.

    Implementations raise ``HearthError`` when their store is away; the config then goes
    on with what this process has."""

    def save(self, name: str, text: str) -> None: ...
    def load(self, name: str) -> str | None: ...
    def forget(self, name: str) -> None: ...


@dataclass
class _File:
    stamp: tuple[int, int]  # (mtime_ns, size)
    couple: Couple | None  # the last good version, if there ever was one


class LiveConfig:
    """The couples of a directory, kept current by ``refresh()``."""

    def __init__(self, directory: Path, last_good: LastGood | None = None) -> None:
        self.directory = directory
        self._last_good = last_good
        self._files: dict[Path, _File] = {}
        self._couples: dict[str, Couple] = {}
        self._phones: dict[str, list[tuple[Couple, Partner]]] = {}
        self._failing: dict[Path, CoupleFileInvalid] = {}

    @property
    def failing(self) -> dict[Path, CoupleFileInvalid]:
        """The files whose current text does not load, with their issues (their couples
        run on the last good version, if there is one)."""
        return dict(self._failing)

    @property
    def couples(self) -> dict[str, Couple]:
        """Every couple that has a good version, by id (first file wins on a clash)."""
        return dict(self._couples)

    def get(self, couple_id: str) -> Couple | None:
        """One couple; a dictionary lookup, however many couples there are (workers call it
        for every send)."""
        return self._couples.get(couple_id)

    def unreadable(self, couple_id: str) -> bool:
        """Whether ``couple_id`` names a file that is there but has no good version (broken
        since before this process read it, and no shared version could be read)."""
        return any(f.couple is None and path.stem == couple_id for path, f in self._files.items())

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
            self._failing.pop(path, None)
            self._share(partial(_forget, name=path.name), path.name)
        touched = bool(gone)
        reread: set[Path] = set()
        for path, st in present.items():
            stamp = (st.st_mtime_ns, st.st_size)
            known = self._files.get(path)
            if known is not None and known.stamp == stamp:
                if known.couple is None and self._last_good is not None:
                    # Broken with no good version when it was read (perhaps Redis was
                    # away): the shared one may be readable now.
                    shared = self._shared_version(path)
                    if shared is not None:
                        self._files[path] = _File(stamp, shared)
                        touched = True
                continue
            touched = True
            reread.add(path)
            try:
                couple: Couple | None = self._load(path)
                self._failing.pop(path, None)
            except CoupleFileInvalid as e:
                result.failures.append(e)
                self._failing[path] = e
                last = self._shared_version(path) or (known.couple if known else None)
                # The values are left out (one may be a number or a text typed in the wrong
                # place); `hearth validate` shows them to whoever edits the file.
                log.error(
                    "%s is invalid; %s (hearth validate shows the values)\n%s",
                    path,
                    f"keeping the last good version of {last.id!r}" if last else "not loaded",
                    redact_failure(e),
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
        read_ids = {f.couple.id for p, f in self._files.items() if p in reread and f.couple}
        result.reread = sorted(read_ids - set(result.changed))
        return result

    def _load(self, path: Path) -> Couple:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            name = str(path)
            raise CoupleFileInvalid(
                name, [Issue(name, 1, 1, "(file)", f"cannot read: {e}")]
            ) from None
        couple = load_couple_text(text, str(path), default_id=path.stem)
        self._share(lambda shared: shared.save(path.name, text), path.name)
        return couple

    def _shared_version(self, path: Path) -> Couple | None:
        """The last good version any process loaded of this file, if it is still good."""
        if self._last_good is None:
            return None
        try:
            text = self._last_good.load(path.name)
        except HearthError as e:
            log.warning("cannot read the shared last good version of %s: %s", path, e)
            return None
        if text is None:
            return None
        try:
            return load_couple_text(text, f"{path} (last good version)", default_id=path.stem)
        except CoupleFileInvalid:
            return None  # good under an older Hearth, perhaps; not any more

    def _share(self, action: Callable[[LastGood], None], name: str) -> None:
        if self._last_good is None:
            return
        try:
            action(self._last_good)
        except HearthError as e:
            log.warning("cannot share the last good version of %s: %s", name, e)
