"""The backup archive: one gzip-compressed tar, its manifest first, then what it holds.

    hearth-backup.json          the manifest (``Manifest``): format, when, which database
    database/hearth.sqlite3     SQLite: a copy made with the online backup API
    database/hearth.pgdump      PostgreSQL: ``pg_dump --format=custom`` of Hearth's schema
    config/<path>               every file of the config directory
    data/<name>                 the data dir's own files (the feed secret, the webhook token)
    outbox.jsonl                the console sender's outbox, when there is one

It holds secrets and the couples' words, so it is written 0600, and read back with every
member checked: a name outside this layout, a link or a device is refused, never extracted.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Literal

from service.domain.errors import HearthError

__all__ = [
    "FORMAT",
    "MANIFEST",
    "BackupError",
    "Manifest",
    "OpenArchive",
    "read_archive",
    "write_archive",
]

FORMAT = "hearth-backup/1"
MANIFEST = "hearth-backup.json"
_TOPS = {"database", "config", "data"}
_FILES = {MANIFEST, "outbox.jsonl"}

DatabaseKind = Literal["sqlite", "postgresql"]


class BackupError(HearthError):
    """A backup cannot be made, or an archive cannot be restored here; says which and why."""


@dataclass(frozen=True, slots=True)
class Manifest:
    """What an archive holds and where it came from."""

    created_at: str  # RFC 3339, UTC
    hearth_version: str
    database: DatabaseKind
    revision: str  # the database's schema revision (Alembic), e.g. "0008"
    schema: str | None = None  # PostgreSQL: the schema Hearth's tables were in
    # Secrets the service read from its environment, by variable name only: not in the
    # archive, so whoever restores must bring them.
    secrets_from_environment: tuple[str, ...] = ()
    format: str = FORMAT

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()

    @classmethod
    def from_json(cls, raw: bytes, where: Path) -> Manifest:
        try:
            data = json.loads(raw)
            if not isinstance(data, dict):
                raise TypeError("not an object")
            if data.get("format") != FORMAT:
                raise BackupError(
                    f"{where} is a {data.get('format')!r} archive; this Hearth reads {FORMAT}: "
                    "restore it with the Hearth that made it or a newer one"
                )
            return cls(
                created_at=str(data["created_at"]),
                hearth_version=str(data["hearth_version"]),
                database=_kind(data["database"]),
                revision=str(data["revision"]),
                schema=None if data.get("schema") is None else str(data["schema"]),
                secrets_from_environment=tuple(
                    str(s) for s in data.get("secrets_from_environment", ())
                ),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise BackupError(f"{where}: {MANIFEST} is not a Hearth backup manifest ({e})") from e


def write_archive(path: Path, manifest: Manifest, members: Mapping[str, Path]) -> None:
    """Write the archive to ``path`` (0600): the manifest, then ``members`` (archive name ->
    file). A half-written archive never takes the name: it is renamed into place whole."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise BackupError(f"cannot write {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = manifest.to_json()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(data), 0o600, _epoch(manifest.created_at)
            tar.addfile(info, io.BytesIO(data))
            for name, source in members.items():
                _check_name(name, path)
                tar.add(source, arcname=name, recursive=False, filter=_private)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


class OpenArchive:
    """An archive being read: its manifest, its member names, and extraction of one member."""

    def __init__(self, path: Path, tar: tarfile.TarFile, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest
        self._tar = tar
        self._members = {m.name: m for m in tar.getmembers() if m.name != MANIFEST}

    @property
    def names(self) -> list[str]:
        return sorted(self._members)

    def under(self, top: str) -> list[str]:
        """Member names below ``top/`` without the prefix (``config/a.yaml`` -> ``a.yaml``)."""
        prefix = f"{top}/"
        return [n.removeprefix(prefix) for n in self.names if n.startswith(prefix)]

    def read(self, name: str) -> bytes:
        extracted = self._tar.extractfile(self._members[name])
        assert extracted is not None  # only regular files get past ``read_archive``
        return extracted.read()

    def extract(self, name: str, dest: Path) -> None:
        """Write member ``name`` to ``dest``, created 0600 (it must not exist)."""
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            extracted = self._tar.extractfile(self._members[name])
            assert extracted is not None
            while chunk := extracted.read(1 << 20):
                out.write(chunk)


@contextmanager
def read_archive(path: Path) -> Iterator[OpenArchive]:
    """Open a Hearth backup, or raise ``BackupError`` saying why ``path`` is not one."""
    if not path.is_file():
        raise BackupError(f"{path}: no such file")
    try:
        tar = tarfile.open(path, mode="r:gz")  # noqa: SIM115 - closed by the ``with`` below
    except (tarfile.TarError, OSError, EOFError) as e:
        raise BackupError(
            f"{path} is not a Hearth backup: not a gzip-compressed tar archive ({e})"
        ) from e
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as e:
            raise BackupError(f"{path} is not a Hearth backup: the archive is damaged ({e})") from e
        names = [m.name for m in members]
        if MANIFEST not in names:
            raise BackupError(f"{path} is not a Hearth backup: it has no {MANIFEST}")
        for member in members:
            if not member.isfile():
                raise BackupError(f"{path}: member {member.name!r} is not a regular file")
            _check_name(member.name, path)
        raw = tar.extractfile(MANIFEST)
        assert raw is not None
        manifest = Manifest.from_json(raw.read(), path)
        yield OpenArchive(path, tar, manifest)


def _check_name(name: str, archive: Path) -> None:
    pure = PurePosixPath(name)
    inside = not pure.is_absolute() and ".." not in pure.parts and "" not in pure.parts
    # Only config/ has subdirectories; the database and the data dir's files are one level.
    depth_ok = len(pure.parts) >= 2 if pure.parts[:1] == ("config",) else len(pure.parts) == 2
    known = name in _FILES or (depth_ok and pure.parts[0] in _TOPS)
    if not (inside and known):
        raise BackupError(f"{archive}: member {name!r} is not part of a Hearth backup")


def _epoch(instant: str) -> int:
    return int(datetime.fromisoformat(instant).timestamp())


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode = 0o600
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _kind(value: object) -> DatabaseKind:
    if value == "sqlite":
        return "sqlite"
    if value == "postgresql":
        return "postgresql"
    raise ValueError(f"unknown database kind {value!r}")
