"""Databases for adapter tests: a SQLite file, or a fresh PostgreSQL schema on DATABASE_URL.

Each PostgreSQL test gets its own schema, named in the connection's ``search_path`` so that
the tables and Alembic's version table land there, and dropped afterwards: the server's
database is left as it was found.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from uuid import uuid4

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from service.storage import make_engine, redact_url

BACKENDS = ("sqlite", "postgresql")
POSTGRESQL_MISSING = "DATABASE_URL not set: PostgreSQL tests need a server"
# For a test that needs a PostgreSQL server of its own kind (roles, backends), not only a
# database: skipped, saying why, unless DATABASE_URL names one (CI turns the skip into a
# failure, tests/conftest.py).
requires_postgresql = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgresql"),
    reason="DATABASE_URL does not name a PostgreSQL server: this test needs one",
)


@contextmanager
def database(backend: str, directory: Path) -> Iterator[str]:
    """The URL of an empty database of ``backend``, for the duration of the block."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / 'data' / 'hearth.sqlite3'}"
    elif backend == "postgresql":
        with postgresql_schema() as url:
            yield url
    else:
        raise ValueError(f"unknown backend {backend!r}")


@contextmanager
def postgresql_schema() -> Iterator[str]:
    """A URL whose connections use a new, empty schema of DATABASE_URL's database."""
    server = _postgresql_server()
    parsed = make_url(server)
    schema = f"hearth_test_{uuid4().hex[:12]}"
    options = f"{parsed.query.get('options', '')} -csearch_path={schema}".strip()
    url = parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)
    admin = make_engine(server)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        try:
            yield url
        finally:
            with admin.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    finally:
        admin.dispose()


@contextmanager
def postgresql_database() -> Iterator[str]:
    """The URL of a new, empty database on DATABASE_URL's server (its ``public`` schema, as a
    real deployment's), dropped afterwards. For what works on a whole database: a backup
    restored into another database of the same server."""
    server = _postgresql_server()
    parsed = make_url(server)
    name = f"hearth_test_{uuid4().hex[:12]}"
    admin = make_engine(server).execution_options(isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    finally:
        admin.engine.dispose()


def _postgresql_server() -> str:
    """DATABASE_URL, when it names a PostgreSQL server; else the test skips, saying why
    (CI, which sets it, fails such a skip)."""
    server = os.environ.get("DATABASE_URL")
    if not server:
        pytest.skip(POSTGRESQL_MISSING)
    if make_url(server).get_backend_name() != "postgresql":
        pytest.skip(f"DATABASE_URL is not PostgreSQL: {redact_url(server)}")
    return server
