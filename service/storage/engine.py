"""Engines for the prompt log: a SQLite file by default, PostgreSQL through psycopg.

SQLite connections run in WAL mode (readers never wait for the writer) with foreign keys on
and a busy timeout, and SQLAlchemy, not the ``sqlite3`` module, emits ``BEGIN``: a
transaction then covers every statement in it, DDL included. A writing transaction
(``writing``) starts with ``BEGIN IMMEDIATE``, taking the write lock first, so a second
writer waits out the busy timeout instead of failing with "database is locked" when a read
would have had to turn into a write.

A SQLite file holds the couples' words, so it is created 0600 (its -wal and -shm take the
same mode from it) in a directory created 0700, and every connection sets
``secure_delete``: a deleted row's bytes are overwritten with zeros, not left in free pages
(``hearth forget`` relies on it, and checkpoints the WAL afterwards).
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from service.storage.errors import StorageError

__all__ = [
    "insert",
    "make_engine",
    "make_session_factory",
    "reading",
    "translated",
    "writing",
]

SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRESQL_CONNECT_TIMEOUT_S = 10
# A Connection execution option: this transaction writes (BEGIN IMMEDIATE on SQLite).
_WRITING = "hearth_writing"


def make_engine(url: str) -> Engine:
    """An engine for ``url`` (``sqlite:///…`` or ``postgresql://…``); connects lazily.

    A bare ``postgresql://`` URL uses psycopg 3. For a SQLite file, its directory is created.
    """
    parsed = _parse(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "postgresql":
        return _postgresql_engine(parsed)
    raise StorageError(url, f"unsupported database {backend!r}: use sqlite:// or postgresql://")


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions on ``engine`` whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that will write; committed on leaving, rolled back on
    error. Driver errors leave as ``StorageError``."""
    with translated(engine), engine.connect() as conn:
        conn.execution_options(**{_WRITING: True})
        with conn.begin():
            yield conn


def insert(conn: Connection, model: type[Any]) -> postgresql.Insert | sqlite.Insert:
    """``INSERT`` in the connection's dialect, which has ``ON CONFLICT`` on both we support."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(model)
    if conn.dialect.name == "sqlite":
        return sqlite.insert(model)
    raise StorageError(str(conn.engine.url), f"unsupported database {conn.dialect.name!r}")


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for reads; driver errors leave as ``StorageError``."""
    with translated(engine), engine.connect() as conn:
        yield conn


@contextmanager
def translated(engine: Engine) -> Iterator[None]:
    """Driver errors (unreachable, locked, refused, …) leave as ``StorageError``."""
    try:
        yield
    except DBAPIError as e:
        raise StorageError.from_dbapi(str(engine.url), e) from e


def _parse(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:
        raise StorageError(url, "not a database URL (sqlite:///… or postgresql://…)") from None


def _sqlite_engine(url: URL) -> Engine:
    database = url.database
    in_file = bool(database) and database != ":memory:" and not url.query.get("uri")
    if database and in_file:
        try:
            _private_file(Path(database).expanduser())
        except OSError as e:
            raise StorageError(str(url), f"cannot create {database}: {e}") from e
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        assert isinstance(dbapi_connection, sqlite3.Connection)
        # sqlite3 would BEGIN only before INSERT/UPDATE/DELETE; SQLAlchemy begins instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.execute("PRAGMA secure_delete = ON")
            if in_file:
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        writes = conn.get_execution_options().get(_WRITING, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writes else "BEGIN")

    return engine


def _private_file(path: Path) -> None:
    """Create ``path`` empty and 0600 (its directory 0700 if new); an existing one is made
    0600 too. SQLite gives its -wal and -shm files the database file's mode."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        info = path.stat()
        if info.st_mode & 0o077 and info.st_uid == os.getuid():
            path.chmod(0o600)


def _postgresql_engine(url: URL) -> Engine:
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = POSTGRESQL_CONNECT_TIMEOUT_S
    # pre-ping: a worker outlives server restarts without failing its next send.
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args)
