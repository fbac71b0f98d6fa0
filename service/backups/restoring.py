"""``hearth restore PATH``: a fresh data dir (and database) brought back to a backup's state.

Everything is checked before anything is written: the archive is a Hearth backup, its
database revision is one this Hearth knows (a newer Hearth's is refused), the database kind
matches DATABASE_URL's, the data dir and the database are empty, and the config directory
is empty or already holds exactly the backup's files (so a read-only mount of the same
files is fine). Then the database is loaded, the data dir's files, the outbox and the
config written 0600 in 0700 directories, and the database migrated to this Hearth's schema.
Redis is not touched: start Hearth on an empty one and it rebuilds what it keeps there.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from service.backups.archive import BackupError, Manifest, OpenArchive, read_archive
from service.backups.databases import database_at
from service.backups.files import differing_config
from service.backups.making import ENVIRONMENT_SECRETS
from service.data_dir import private_directory
from service.storage import head_revision, known_revisions, migrate

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["Restored", "restore"]


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restore did, to say so."""

    manifest: Manifest
    database: str
    config_written: bool  # False: the config directory already held the same files
    config: list[str]
    data: list[str]
    outbox: bool
    missing_secrets: list[str]  # set when the backup was made, not set now


def restore(settings: Settings, path: Path) -> Restored:
    """Restore the archive at ``path`` into the data dir, database and config directory the
    settings name; ``BackupError`` (nothing written) if any of them is not fresh."""
    with read_archive(path) as archive:
        manifest = archive.manifest
        known = known_revisions()
        if manifest.revision not in known:
            raise BackupError(
                f"{path} was made by Hearth {manifest.hearth_version}, whose database is at "
                f"revision {manifest.revision}, which this Hearth does not know (its newest is "
                f"{head_revision()}): restore it with that Hearth or a newer one"
            )
        database = database_at(settings.log_url)
        if database.kind != manifest.database:
            raise BackupError(
                f"{path} holds a {manifest.database} database, but DATABASE_URL names a "
                f"{database.kind} one ({database.shown}): restore into the same kind"
            )
        _check_fresh_data_dir(settings.data_dir)
        database.check_empty(manifest)
        has_outbox = "outbox.jsonl" in archive.names
        outbox = settings.outbox_path
        if has_outbox and outbox.exists():
            raise BackupError(f"{outbox} already exists: restore only into a fresh outbox")
        config = {name: archive.read(f"config/{name}") for name in archive.under("config")}
        differing = differing_config(settings.config_dir, config)
        write_config = bool(differing)
        if write_config and _has_entries(settings.config_dir):
            raise BackupError(
                f"the config directory {settings.config_dir} holds other files than the "
                f"backup's ({', '.join(differing[:5])}): empty it, or point HEARTH_CONFIG_DIR "
                "at an empty directory"
            )

        private_directory(settings.data_dir)
        with tempfile.TemporaryDirectory(prefix="hearth-restore-") as scratch:
            database.load(archive, Path(scratch))
        data = archive.under("data")
        for name in data:
            archive.extract(f"data/{name}", settings.data_dir / name)
        if has_outbox:
            private_directory(outbox.parent)
            archive.extract("outbox.jsonl", outbox)
        if write_config:
            _write_config(settings.config_dir, archive)
    migrate(settings.log_url)
    return Restored(
        manifest,
        database.shown,
        write_config,
        sorted(config),
        data,
        has_outbox,
        [
            name
            for field, name in ENVIRONMENT_SECRETS.items()
            if name in manifest.secrets_from_environment and getattr(settings, field) is None
        ],
    )


def _check_fresh_data_dir(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise BackupError(f"the data dir {directory} is not a directory")
    if _has_entries(directory):
        shown = ", ".join(sorted(p.name for p in directory.iterdir())[:5])
        raise BackupError(
            f"the data dir {directory} is not empty (it holds {shown}): restore only into a "
            "fresh one (set HEARTH_DATA_DIR to a new directory)"
        )


def _has_entries(directory: Path) -> bool:
    return directory.is_dir() and any(directory.iterdir())


def _write_config(directory: Path, archive: OpenArchive) -> None:
    private_directory(directory)
    for name in archive.under("config"):
        dest = directory / name
        for parent in reversed(dest.relative_to(directory).parents[:-1]):
            private_directory(directory / parent)
        archive.extract(f"config/{name}", dest)
        # The couples' files carry phone numbers; their owner may loosen this.
        os.chmod(dest, 0o600)
