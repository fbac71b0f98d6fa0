"""Fixtures of the fault tests: a Redis of each test's own, a migrated SQLite prompt log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.storage import PromptLog, make_engine, migrate
from tests.faults.processes import RedisServer


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """The embedded Redis, started for this test alone (never REDIS_URL's server)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """Fault tests never share a Redis, nor use REDIS_URL's: each has an embedded one."""
    return redis_server.url


@dataclass(frozen=True)
class Log:
    url: str
    prompts: PromptLog


@pytest.fixture
def sqlite_log(tmp_path: Path) -> Iterator[Log]:
    """A migrated SQLite prompt log in the test's directory, and a reader of it."""
    url = f"sqlite:///{tmp_path / 'data' / 'hearth.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        yield Log(url, PromptLog(engine))
    finally:
        engine.dispose()
