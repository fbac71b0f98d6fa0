"""Feed tokens against real Redis and SQL: made from a stored random nonce, shown again,
revoked for good by a rotation (one partner's, or every partner's), even against a render
that was already running."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import Engine, MetaData, Table, select, text

from service.capabilities import derive_token, token_hash
from service.domain.clock import ManualClock
from service.feeds.publisher import FeedPublisher, FeedUrl, feed_key, revoked_key
from service.runtime import Runtime
from service.settings import Settings
from service.storage import (
    AnswerLog,
    FeedToken,
    FeedTokens,
    RitualVersions,
    make_engine,
    migrate,
)
from tests.databases import BACKENDS, database
from tests.domain.builders import utc

COUPLE = "alex-sam"
COUPLE_FILE = """\
couple: alex-sam
timezone: Europe/Berlin
partners:
  - {name: Alex, phone: "+4915112340001"}
  - {name: Sam, phone: "+4915112340002"}
rituals:
  - kind: date_night
    schedule: every friday at 19:30
"""
SECRET = "s" * 40


@dataclass
class World:
    settings: Settings
    engine: Engine
    redis: Redis
    clock: ManualClock

    def publisher(
        self,
        secret: str = SECRET,
        versions: RitualVersions | None = None,
        tokens: FeedTokens | None = None,
    ) -> FeedPublisher:
        settings = self.settings.model_copy(update={"feed_secret": secret})
        runtime = Runtime(settings, clock=self.clock, redis=self.redis, engine=self.engine)
        return FeedPublisher(
            runtime.couples,
            tokens or FeedTokens(self.engine),
            versions or RitualVersions(self.engine),
            AnswerLog(self.engine),
            self.redis,
            self.clock,
            runtime.secret,
            "https://hearth.example.org",
        )


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Iterator[World]:
    with database(request.param, tmp_path) as url:
        config = tmp_path / "couples"
        config.mkdir()
        (config / f"{COUPLE}.yaml").write_text(COUPLE_FILE, encoding="utf-8")
        migrate(url)
        settings = Settings(
            _env_file=None, HEARTH_CONFIG_DIR=str(config), HEARTH_DATA_DIR=str(tmp_path / "var"),
            DATABASE_URL=url, REDIS_URL=redis_url, HEARTH_FEED_SECRET=SECRET,
        )  # fmt: skip
        engine = make_engine(url)
        redis = Redis.from_url(redis_url)
        try:
            yield World(settings, engine, redis, ManualClock(utc(2026, 11, 25, 12)))
        finally:
            redis.close()
            engine.dispose()


def _token(url: FeedUrl) -> str:
    return url.url.rsplit("/", 1)[1].removesuffix(".ics")


def _by_partner(urls: list[FeedUrl]) -> dict[str, str]:
    return {u.partner: _token(u) for u in urls}


def _rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        table = Table("feed_tokens", MetaData(), autoload_with=conn)
        return [tuple(r) for r in conn.execute(select(table))]


def test_a_url_is_shown_again_unchanged_and_stored_only_as_a_nonce_and_a_hash(
    world: World,
) -> None:
    first = _by_partner(world.publisher().urls(COUPLE))
    again = _by_partner(world.publisher().urls(COUPLE))  # another process, same secret and DB
    assert first == again
    stored = FeedTokens(world.engine).of_couple(COUPLE)
    for partner, token in first.items():
        assert stored[partner].token_hash == token_hash(token)
        assert (
            derive_token(SECRET.encode(), "feed", COUPLE, partner, stored[partner].nonce) == token
        )
    assert not [v for row in _rows(world.engine) for v in row if str(v) in first.values()]


def test_the_secret_alone_derives_no_url_and_the_database_alone_opens_none(
    world: World, tmp_path: Path
) -> None:
    tokens = _by_partner(world.publisher().urls(COUPLE))
    secret = SECRET.encode()
    # What the secret alone can compute: the old derivation from a generation counter, or
    # the new one from any guess of the nonce.
    for partner, token in tokens.items():
        for generation in range(1, 6):
            legacy = hmac.new(secret, f"{COUPLE}\0{partner}\0{generation}".encode(),
                              hashlib.sha256).digest()[:24]  # fmt: skip
            assert token != base64.urlsafe_b64encode(legacy).decode().rstrip("=")
            assert token != derive_token(secret, "feed", COUPLE, partner, str(generation))
    # The same secret and couple on a fresh database: other URLs (the nonce is random).
    with database("sqlite", tmp_path / "other") as url:
        migrate(url)
        other = World(world.settings, make_engine(url), world.redis, world.clock)
        assert set(_by_partner(other.publisher().urls(COUPLE)).values()).isdisjoint(tokens.values())
        other.engine.dispose()
    # The same database with another secret: the stored nonces make other URLs.
    elsewhere = _by_partner(world.publisher(secret="t" * 40).urls(COUPLE))
    assert set(elsewhere.values()).isdisjoint(tokens.values())


def test_a_rotation_revokes_the_old_url_for_good(world: World) -> None:
    publisher = world.publisher()
    publisher.publish(COUPLE)
    old = _by_partner(publisher.urls(COUPLE))
    new = publisher.rotate(COUPLE, "sam")
    assert _token(new) != old["sam"]
    assert not world.redis.exists(feed_key(token_hash(old["sam"])))
    assert FeedTokens(world.engine).find(token_hash(old["sam"])) is None
    assert world.redis.sismember(revoked_key(COUPLE), token_hash(old["sam"]))
    assert world.redis.exists(feed_key(token_hash(_token(new))))
    assert FeedTokens(world.engine).of_couple(COUPLE)["sam"].generation == 2
    assert _by_partner(publisher.urls(COUPLE))["alex"] == old["alex"], "Alex's URL stands"


class _RotatingMidRender(RitualVersions):
    """The publisher's ritual versions, read after its tokens and before its store: the
    moment to run ``rotate`` in between, as another process could."""

    def __init__(self, engine: Engine, rotate: Callable[[], None]) -> None:
        super().__init__(engine)
        self._rotate: Callable[[], None] | None = rotate

    def update(
        self, couple: str, hashes: Mapping[str, str], now: datetime
    ) -> dict[str, tuple[int, datetime]]:
        found = super().update(couple, hashes, now)
        rotate, self._rotate = self._rotate, None
        if rotate is not None:
            rotate()
        return found


class _Watching(FeedTokens):
    """The publisher's tokens, which note at each read whether ``key`` is in Redis: the
    second read comes after the render stored its feeds."""

    def __init__(self, engine: Engine, redis: Redis, key: str) -> None:
        super().__init__(engine)
        self.redis, self.key, self.seen = redis, key, list[int]()

    def of_couple(self, couple: str) -> dict[str, FeedToken]:
        self.seen.append(int(self.redis.exists(self.key)))
        return super().of_couple(couple)


def test_a_render_running_when_the_url_is_rotated_never_brings_the_old_url_back(
    world: World,
) -> None:
    world.publisher().publish(COUPLE)
    before = _by_partner(world.publisher().urls(COUPLE))
    old_hash = token_hash(before["sam"])
    rotated: list[FeedUrl] = []
    watching = _Watching(world.engine, world.redis, feed_key(old_hash))
    slow = world.publisher(
        versions=_RotatingMidRender(
            world.engine, lambda: rotated.append(world.publisher().rotate(COUPLE, "sam"))
        ),
        tokens=watching,
    )
    world.clock.advance(utc(2026, 11, 26) - utc(2026, 11, 25))  # new bytes: a real write

    slow.publish(COUPLE)  # read Sam's old token, then the rotation, then its store

    [new] = rotated
    assert watching.seen == [1, 0], "the old URL's feed came back after the rotation"
    assert not world.redis.exists(feed_key(old_hash))
    assert world.redis.exists(feed_key(token_hash(_token(new)))), "the new URL lost its feed"
    assert world.publisher().served(COUPLE, "sam") is not None
    assert world.redis.exists(feed_key(token_hash(before["alex"])))


def test_rotate_all_gives_every_partner_a_new_url_and_revokes_every_old_one(
    world: World,
) -> None:
    publisher = world.publisher()
    publisher.publish(COUPLE)
    old = _by_partner(publisher.urls(COUPLE))

    assert publisher.rotate_all([COUPLE]) == 2

    new = _by_partner(publisher.urls(COUPLE))
    assert set(new.values()).isdisjoint(old.values())
    for partner in ("alex", "sam"):
        assert not world.redis.exists(feed_key(token_hash(old[partner])))
        assert world.redis.exists(feed_key(token_hash(new[partner])))
    assert {t.generation for t in FeedTokens(world.engine).of_couple(COUPLE).values()} == {2}


def test_the_https_url_fits_googles_from_url_field(world: World) -> None:
    for url in world.publisher().urls(COUPLE):
        assert len(_token(url)) == 32
        assert len(url.url) <= 256
        assert not url.too_long_for_google
    long = FeedUrl("sam", "Sam", "http://" + "h" * 200 + ".example/feeds/" + "A" * 32 + ".ics",
                   "", "")  # fmt: skip
    assert long.too_long_for_google  # counted as https, whatever the scheme given


@pytest.mark.parametrize("backend", BACKENDS)
def test_migration_0009_drops_the_tokens_derived_from_the_secret_alone(
    backend: str, tmp_path: Path
) -> None:
    from alembic import command

    from service.storage.engine import writing
    from service.storage.schema import _config

    with database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            with writing(engine) as conn:
                command.upgrade(_config(conn), "0008")
                conn.execute(
                    text("INSERT INTO feed_tokens VALUES (:c, 'sam', 3, :h, :t)"),
                    {"c": COUPLE, "h": "ab" * 32, "t": utc(2026, 1, 1)},
                )
            migrate(url)
            assert _rows(engine) == []
            made = FeedTokens(engine).make(FeedToken(COUPLE, "sam", 1, "cd" * 16, "ef" * 32),
                                           utc(2026, 2, 1))  # fmt: skip
            assert made.nonce == "cd" * 16
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_row_an_older_hearth_writes_during_the_upgrade_is_never_served_and_is_replaced(
    backend: str, tmp_path: Path
) -> None:
    """An older Hearth still running beside the migrated database inserts its derived
    tokens without a nonce (the column is nullable, so its insert works): no request finds
    such a row, and the next token made for that partner replaces it."""
    with database(backend, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            with engine.begin() as conn:  # the older version's insert: it knows no nonce
                conn.execute(
                    text(
                        "INSERT INTO feed_tokens (couple, partner, generation, token_hash, "
                        "created_at) VALUES (:c, 'sam', 2, :h, :t)"
                    ),
                    {"c": COUPLE, "h": "ab" * 32, "t": utc(2026, 1, 1)},
                )
            tokens = FeedTokens(engine)
            assert tokens.find("ab" * 32) is None
            assert tokens.of_couple(COUPLE) == {}
            made = tokens.make(FeedToken(COUPLE, "sam", 1, "cd" * 16, "ef" * 32), utc(2026, 2, 1))
            assert made.nonce == "cd" * 16
            assert tokens.find("ef" * 32) == made
            assert len(_rows(engine)) == 1
        finally:
            engine.dispose()
