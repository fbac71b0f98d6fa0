"""Alembic's entry point: runs the migrations on the connection ``migrate`` hands over.

There is no ``alembic.ini``; ``service.storage.migrate`` builds the configuration in code
and passes an open connection, already in a transaction, in ``config.attributes``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from service.storage.models import Base


def _run() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "the prompt log's migrations run through service.storage.migrate(url) "
            "(or `hearth migrate`), which hands them a connection"
        )
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        # SQLite alters a table by copying it; later revisions need batch mode there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


_run()
