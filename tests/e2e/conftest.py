"""The end-to-end tests share the fault tests' fixtures: a Redis of the test's own (which it
may kill) and a migrated SQLite prompt log."""

from tests.faults.conftest import redis_server, sqlite_log

__all__ = ["redis_server", "sqlite_log"]
