"""The log database in a backup: a SQLite file copied with SQLite's online backup API, or a
PostgreSQL schema dumped with ``pg_dump``; and the same database loaded back, only ever into
an empty one.

Both copies are consistent while Hearth runs: the backup API copies one snapshot of the file
(restarting if a writer changes it mid-copy), and ``pg_dump`` reads in one transaction.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url

from service.backups.archive import BackupError, DatabaseKind
from service.data_dir import private_directory
from service.storage import make_engine, redact_url
from service.storage.engine import reading

if TYPE_CHECKING:
    from service.backups.archive import Manifest, OpenArchive

__all__ = ["Database", "database_at"]

_SQLITE_MEMBER = "database/hearth.sqlite3"
_POSTGRESQL_MEMBER = "database/hearth.pgdump"
# A schema (and its comment) in pg_restore's list: the target's schema already exists.
_SCHEMA_ENTRY = re.compile(r"^\d+; \d+ \d+ (SCHEMA|COMMENT - SCHEMA) ")
_TOOL_TIMEOUT_S = 3600


class Database(Protocol):
    """Where the log lives, as a backup sees it."""

    @property
    def kind(self) -> DatabaseKind: ...

    @property
    def member(self) -> str:
        """Its name in the archive."""
        ...

    @property
    def shown(self) -> str:
        """How to name it to a person (passwords hidden)."""
        ...

    def schema(self) -> str | None:
        """PostgreSQL: the schema Hearth's tables are in; SQLite: None."""
        ...

    def dump(self, dest: Path) -> str:
        """Copy the database to ``dest`` (a new file); returns its schema revision."""
        ...

    def check_empty(self, manifest: Manifest) -> None:
        """Raise ``BackupError`` unless the archive's database can be loaded here."""
        ...

    def load(self, archive: OpenArchive, work: Path) -> None:
        """Load the archive's database (``work``: a private directory for scratch files)."""
        ...


def database_at(url: str) -> Database:
    """The database ``url`` names (``Settings.log_url``)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise BackupError(f"{url}: an in-memory database cannot be backed up or restored")
        return SqliteDatabase(Path(parsed.database))
    return PostgresqlDatabase(url)


class SqliteDatabase:
    """A SQLite file: copied page by page with the online backup API."""

    kind: DatabaseKind = "sqlite"
    member = _SQLITE_MEMBER

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def shown(self) -> str:
        return str(self.path)

    def schema(self) -> str | None:
        return None

    def dump(self, dest: Path) -> str:
        if not self.path.is_file():
            raise BackupError(
                f"no database at {self.path}: nothing to back up (is HEARTH_DATA_DIR or "
                "DATABASE_URL the one Hearth runs with?)"
            )
        os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        source = sqlite3.connect(self.path, timeout=10)
        copy = sqlite3.connect(dest)
        try:
            source.backup(copy)
            # One self-contained file: no -wal beside it in the archive.
            copy.execute("PRAGMA journal_mode = DELETE")
            return _sqlite_revision(copy, self.path)
        except sqlite3.DatabaseError as e:
            raise BackupError(f"cannot copy {self.path}: {e}") from e
        finally:
            copy.close()
            source.close()

    def check_empty(self, manifest: Manifest) -> None:
        for path in _sqlite_files(self.path):
            if path.exists() and path.stat().st_size > 0:
                raise BackupError(
                    f"{path} already exists: restore only into a fresh database (move it away "
                    "or point HEARTH_DATA_DIR / DATABASE_URL elsewhere)"
                )

    def load(self, archive: OpenArchive, work: Path) -> None:
        private_directory(self.path.parent)
        incoming = self.path.with_name(f".{self.path.name}.restoring")
        incoming.unlink(missing_ok=True)
        archive.extract(self.member, incoming)
        try:
            check = sqlite3.connect(incoming)
            try:
                (result,) = check.execute("PRAGMA quick_check").fetchone()
            finally:
                check.close()
        except sqlite3.DatabaseError as e:
            incoming.unlink()
            raise BackupError(f"{archive.path}: its database is not a SQLite file ({e})") from e
        if result != "ok":
            incoming.unlink()
            raise BackupError(f"{archive.path}: its database fails SQLite's check: {result}")
        for leftover in _sqlite_files(self.path):
            leftover.unlink(missing_ok=True)  # empty ones: ``check_empty`` allowed them
        os.replace(incoming, self.path)


class PostgresqlDatabase:
    """A PostgreSQL database: Hearth's schema (``current_schema()``, usually ``public``) is
    dumped with ``pg_dump --format=custom`` and loaded with ``pg_restore`` in one
    transaction."""

    kind: DatabaseKind = "postgresql"
    member = _POSTGRESQL_MEMBER

    def __init__(self, url: str) -> None:
        self.url = url

    @property
    def shown(self) -> str:
        return redact_url(self.url)

    def schema(self) -> str | None:
        found = self._scalar("SELECT current_schema()")
        if found is None:
            raise BackupError(
                f"{self.shown}: its search_path names no schema that exists; create it first"
            )
        return str(found)

    def dump(self, dest: Path) -> str:
        schema = self.schema()
        revision = self._revision()
        assert schema is not None
        self._run(
            "pg_dump",
            ["--format=custom", "--no-owner", "--no-privileges", f"--schema={schema}"],
            ["--file", str(dest)],
        )
        return revision

    def check_empty(self, manifest: Manifest) -> None:
        schema = self.schema()
        if manifest.schema is not None and manifest.schema != schema:
            raise BackupError(
                f"the backup holds schema {manifest.schema!r}, but {self.shown} uses schema "
                f"{schema!r}: give DATABASE_URL that search_path, or use a database whose "
                f"Hearth schema is {manifest.schema!r}"
            )
        tables = self._column("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        if tables:
            shown = ", ".join(sorted(str(t) for t in tables)[:5])
            raise BackupError(
                f"{self.shown} already holds tables in schema {schema!r} ({shown}): restore "
                "only into an empty database"
            )

    def load(self, archive: OpenArchive, work: Path) -> None:
        dump = work / "hearth.pgdump"
        archive.extract(self.member, dump)
        listing = self._run("pg_restore", ["--list"], [str(dump)], connect=False)
        kept = [f";{line}" if _SCHEMA_ENTRY.match(line) else line for line in listing.splitlines()]
        entries = work / "entries.list"
        entries.write_text("\n".join(kept) + "\n", encoding="utf-8")
        self._run(
            "pg_restore",
            ["--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges"],
            [f"--use-list={entries}", str(dump)],
        )

    def _revision(self) -> str:
        found = self._column("SELECT to_regclass('alembic_version') IS NOT NULL")
        revision = self._column("SELECT version_num FROM alembic_version") if found[0] else []
        if not revision:
            raise BackupError(f"{self.shown} has no Hearth schema: run `hearth migrate` first")
        return str(revision[0])

    def _scalar(self, sql: str) -> object:
        found = self._column(sql)
        return found[0] if found else None

    def _column(self, sql: str) -> list[object]:
        """The first column of ``sql``'s rows; an unreachable server is a ``StorageError``."""
        engine = make_engine(self.url)
        try:
            with reading(engine) as conn:
                return list(conn.scalars(text(sql)).all())
        finally:
            engine.dispose()

    def _run(self, tool: str, options: list[str], args: list[str], *, connect: bool = True) -> str:
        """Run a PostgreSQL client tool; its stdout. The password goes in the environment,
        never on a command line another user could read."""
        binary = shutil.which(tool)
        if binary is None:
            raise BackupError(
                f"{tool} is not installed, and DATABASE_URL is PostgreSQL: install the "
                "PostgreSQL client tools of the server's major version (Debian: "
                "postgresql-client)"
            )
        env = dict(os.environ)
        command = [binary, *options]
        if connect:
            target, password = _libpq(make_url(self.url))
            command.append(f"--dbname={target}")
            if password is not None:
                env["PGPASSWORD"] = password
        try:
            done = subprocess.run(
                [*command, *args],
                env=env,
                capture_output=True,
                text=True,
                timeout=_TOOL_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired as e:
            raise BackupError(f"{tool} did not finish within {_TOOL_TIMEOUT_S} s") from e
        if done.returncode != 0:
            said = " ".join(done.stderr.split())[-600:] or f"exit status {done.returncode}"
            raise BackupError(f"{tool} failed on {self.shown}: {said}")
        return done.stdout


def _libpq(url: URL) -> tuple[str, str | None]:
    """A libpq connection URI for ``url`` without its password, and the password."""
    bare = url.set(drivername="postgresql", password=None)
    return bare.render_as_string(hide_password=False), url.password


def _sqlite_revision(conn: sqlite3.Connection, path: Path) -> str:
    try:
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        row = None
    if row is None:
        raise BackupError(f"{path} has no Hearth schema: run `hearth migrate` first")
    return str(row[0])


def _sqlite_files(path: Path) -> list[Path]:
    return [path, *(path.with_name(path.name + s) for s in ("-wal", "-shm", "-journal"))]
