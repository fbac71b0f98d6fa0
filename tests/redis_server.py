"""Redis for tests: REDIS_URL when set, else one embedded server per test session.

Each test gets a URL on a dedicated db (HEARTH_TEST_REDIS_DB, default 15), flushed before
and after it. Never point REDIS_URL at a Redis whose db 15 you care about.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode

import pytest
import redis

from service.embedded_redis import EmbeddedRedis

TEST_DB = int(os.environ.get("HEARTH_TEST_REDIS_DB", "15"))


def with_db(url: str, db: int) -> str:
    """``url`` selecting ``db``; a ``?db=`` query wins over a ``/N`` path in redis-py."""
    # Not urlunsplit: it turns unix:///path into unix:/path, which redis-py rejects.
    base, _, query = url.partition("?")
    pairs = [(k, v) for k, v in parse_qsl(query) if k != "db"] + [("db", str(db))]
    return f"{base}?{urlencode(pairs)}"


@pytest.fixture(scope="session")
def redis_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if url := os.environ.get("REDIS_URL"):
        yield url
        return
    with EmbeddedRedis(tmp_path_factory.mktemp("data")) as server:
        yield server.url


@pytest.fixture
def redis_url(redis_server_url: str) -> Iterator[str]:
    url = with_db(redis_server_url, TEST_DB)
    with redis.Redis.from_url(url) as client:
        client.flushdb()
        yield url
        client.flushdb()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    with redis.Redis.from_url(redis_url) as client:
        yield client
