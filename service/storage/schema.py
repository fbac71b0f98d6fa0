"""Bringing a database's schema to this Hearth's version with the packaged Alembic migrations.

``hearth run`` and ``hearth migrate`` call ``migrate``; it needs no ``alembic.ini``.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from service.storage.engine import make_engine, writing
from service.storage.errors import StorageError

__all__ = ["current_revision", "head_revision", "known_revisions", "migrate"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Two processes migrating one PostgreSQL database at once take turns on this advisory lock.
_MIGRATION_LOCK = text("SELECT pg_advisory_xact_lock(hashtext('hearth migrate'))")


def migrate(url: str) -> None:
    """Upgrade the database at ``url`` to the newest schema; a no-op when it is already there.

    All of it runs in one transaction (SQLite and PostgreSQL both have transactional DDL), so
    a failure leaves the schema as it was. Raises ``StorageError`` if the database cannot be
    reached or is at a revision this code does not know (a newer Hearth migrated it).
    """
    engine = make_engine(url)
    try:
        with writing(engine) as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(_MIGRATION_LOCK)
            command.upgrade(_config(conn), "head")
    except DBAPIError as e:
        raise StorageError.from_dbapi(url, e) from e
    except CommandError as e:
        raise StorageError(url, f"cannot migrate: {e}") from e
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The revision the database at ``url`` is at; None before the first ``migrate``."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except DBAPIError as e:
        raise StorageError.from_dbapi(url, e) from e
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision this code knows: where ``migrate`` takes a database."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "the migrations directory holds no revision"
    return head


def known_revisions() -> list[str]:
    """Every revision this code can migrate from, oldest first."""
    scripts = ScriptDirectory.from_config(_config())
    return [r.revision for r in reversed(list(scripts.walk_revisions()))]


def _config(conn: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = conn
    return config
