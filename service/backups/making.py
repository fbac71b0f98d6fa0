"""``hearth backup PATH``: the database, the config directory, the data dir's secrets and the
outbox, in one archive, while Hearth runs.

Redis is not in it: everything there is rebuilt (the scheduler re-plans each couple from
the files and the log, feeds are rendered again at start). Secrets given in the environment
(HEARTH_SECRET_KEY, HEARTH_FEED_SECRET, Twilio's token) are not in it either; the manifest
names those that were set, so that whoever restores knows what to bring.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from datetime import UTC
from importlib.metadata import version
from pathlib import Path
from typing import TYPE_CHECKING

from service.backups.archive import BackupError, Manifest, write_archive
from service.backups.databases import SqliteDatabase, database_at
from service.backups.files import config_files, data_files

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["ENVIRONMENT_SECRETS", "Made", "backup"]

# Settings fields that are secrets a backup cannot hold, by their variable's name.
ENVIRONMENT_SECRETS = {
    "secret_key": "HEARTH_SECRET_KEY",
    "old_secret_keys": "HEARTH_OLD_SECRET_KEYS",
    "feed_secret": "HEARTH_FEED_SECRET",
    "twilio_auth_token": "TWILIO_AUTH_TOKEN",
}


@dataclass(frozen=True, slots=True)
class Made:
    """What a backup holds, to say so."""

    manifest: Manifest
    database: str  # how to name it
    config: list[str]
    data: list[str]
    outbox: bool


def backup(settings: Settings, path: Path) -> Made:
    """Write the archive to ``path``, which must not exist yet (a backup never overwrites)."""
    if path.exists():
        raise BackupError(f"{path} already exists: a backup never overwrites; name a new file")
    if not path.parent.is_dir():
        raise BackupError(f"{path.parent}: no such directory to write {path.name} in")
    if path.resolve().is_relative_to(settings.data_dir.resolve()):
        # The next backup would hold this one, and a restore needs an empty data dir.
        raise BackupError(f"{path} is inside the data dir {settings.data_dir}: write it elsewhere")
    database = database_at(settings.log_url)
    sqlite = database.path if isinstance(database, SqliteDatabase) else None
    with tempfile.TemporaryDirectory(prefix="hearth-backup-") as scratch:
        dump = Path(scratch) / "database"
        revision = database.dump(dump)
        # After the database: every text its log has as sent is in this copy of the outbox.
        outbox = _outbox_copy(settings.outbox_path, Path(scratch) / "outbox.jsonl")
        config = config_files(settings.config_dir)
        data = data_files(settings, sqlite)
        members = {database.member: dump}
        members |= {f"config/{name}": p for name, p in config.items()}
        members |= {f"data/{name}": p for name, p in data.items()}
        if outbox is not None:
            members["outbox.jsonl"] = outbox
        manifest = Manifest(
            created_at=settings.clock.now().astimezone(UTC).isoformat(timespec="seconds"),
            hearth_version=version("hearth"),
            database=database.kind,
            revision=revision,
            schema=database.schema(),
            secrets_from_environment=tuple(
                name
                for field, name in ENVIRONMENT_SECRETS.items()
                if getattr(settings, field) is not None
            ),
        )
        write_archive(path, manifest, members)
    return Made(manifest, database.shown, sorted(config), sorted(data), outbox is not None)


def _outbox_copy(outbox: Path, dest: Path) -> Path | None:
    """The outbox's complete lines (one still being appended is left out), or None."""
    try:
        raw = outbox.read_bytes()
    except FileNotFoundError:
        return None
    with dest.open("xb") as out:
        dest.chmod(0o600)
        out.write(raw[: raw.rfind(b"\n") + 1])
    return dest
