"""Calendar feeds over real HTTP: published by the real publisher (SQL tokens and versions,
Redis bytes), served by uvicorn; rotation, conditional requests, and the feed following
skips and moves."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import dramatiq
import httpx
import icalendar
import pytest
from dramatiq.brokers.redis import RedisBroker
from redis import Redis
from redis.client import Monitor
from twilio.request_validator import RequestValidator

from service.capabilities import token_hash
from service.domain.changes import Change
from service.domain.clock import ManualClock
from service.domain.sends import sends_for
from service.embedded_redis import EmbeddedRedis
from service.feeds.publisher import FeedPublisher, feed_key
from service.feeds.render import feed_occurrences
from service.inbound import REPLIES_QUEUE, webhook_token
from service.runtime import Runtime
from service.settings import Settings, load_settings
from service.storage import (
    ChangeEffect,
    Prompt,
    PromptLog,
    ReplyLog,
    Settlement,
    make_engine,
    migrate,
)
from service.storage.answers import AnswerLog
from service.web.app import create_app
from tests.databases import BACKENDS, database
from tests.domain.builders import utc
from tests.waiting import wait_for
from tests.web_server import Serving
from workers import feeds as feed_actor
from workers import replies as reply_actor

PUBLIC = "http://127.0.0.1"  # replaced by the served base in the fixture
COUPLE_YAML = """\
couple: alex-sam
timezone: America/New_York
partners:
  - {name: Alex, phone: "+15550000001"}
  - {name: Sam, phone: "+15550000002"}
rituals:
  - kind: date_night
    schedule: every friday at 19:30
    alarms: [1h]
  - kind: check_in
"""


@dataclass
class Feeds:
    base: str
    settings: Settings
    publisher: FeedPublisher
    clock: ManualClock
    redis: Redis
    replies: ReplyLog
    answers: AnswerLog

    def url(self, partner: str = "alex") -> str:
        [found] = [u for u in self.publisher.urls("alex-sam") if u.partner == partner]
        return found.url

    def get(self, url: str, **headers: str) -> httpx.Response:
        return httpx.get(url, headers=headers, timeout=10)

    def change(self, occurrence_id: str, *, skipped: bool = False, moved_to: object = None) -> None:
        """Record a skip or move as a settled reply would."""
        sid = "SM" + secrets.token_hex(16)
        self.replies.store(sid, {"From": "+15550000001", "Body": "x"}, self.clock.now())
        effect = ChangeEffect("alex-sam", "date_night", occurrence_id, "alex", skipped=skipped,
                              moved_to=moved_to)  # type: ignore[arg-type]  # fmt: skip
        settled = Settlement("moved", None, "alex-sam", "alex", "move", occurrence_id,
                             changes=(effect,))  # fmt: skip
        assert self.replies.settle(sid, settled, self.clock.now())


@pytest.fixture(params=BACKENDS)
def feeds(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Feeds]:
    with database(request.param, tmp_path) as db_url:
        config = tmp_path / "couples"
        config.mkdir()
        (config / "alex-sam.yaml").write_text(COUPLE_YAML, encoding="utf-8")
        port_holder = Serving(None)  # reserve the address first: the public URL names it
        base = port_holder.base
        for name, value in {
            "HEARTH_CONFIG_DIR": str(config),
            "HEARTH_DATA_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "HEARTH_PUBLIC_URL": base,
        }.items():
            monkeypatch.setenv(name, value)
        migrate(db_url)
        settings = load_settings()
        clock = ManualClock(utc(2026, 11, 25, 12))
        engine = make_engine(db_url)
        redis = Redis.from_url(redis_url)
        app = create_app(settings, redis_url, clock)
        port_holder.server.config.app = app
        try:
            with port_holder:
                publisher = Runtime(
                    settings, clock=clock, redis=redis, engine=engine
                ).feed_publisher()
                publisher.publish("alex-sam")
                yield Feeds(base, settings, publisher, clock, redis, ReplyLog(engine),
                            AnswerLog(engine))  # fmt: skip
        finally:
            redis.close()
            engine.dispose()


def test_a_feed_url_serves_the_published_calendar(feeds: Feeds) -> None:
    response = feeds.get(feeds.url())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/calendar; charset=utf-8"
    assert response.headers["cache-control"] == "private"
    etag = response.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")  # noqa: PT018 - one property
    assert response.headers["last-modified"].endswith(" GMT")
    assert response.content == feeds.publisher.served("alex-sam", "alex")
    cal = icalendar.Calendar.from_ical(response.content)
    events = list(cal.walk("VEVENT"))
    assert events
    assert all(str(e["UID"]).startswith("alex-sam/date_night/") for e in events)
    assert str(cal["X-WR-CALNAME"]) == "Hearth: Alex & Sam"
    assert [str(a["TRIGGER"].to_ical(), "ascii") if hasattr(a["TRIGGER"], "to_ical") else ""
            for a in events[0].walk("VALARM")] == ["-PT1H"]  # fmt: skip


def test_head_and_conditional_requests(feeds: Feeds) -> None:
    url = feeds.url()
    full = feeds.get(url)
    etag, modified = full.headers["etag"], full.headers["last-modified"]
    head = httpx.head(url, timeout=10)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["etag"] == etag
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"nope", {etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": "Wed, 01 Jan 2031 00:00:00 GMT"},
    ):
        not_modified = feeds.get(url, **headers)
        assert not_modified.status_code == 304, headers
        assert not_modified.content == b""
        assert not_modified.headers["etag"] == etag
    assert feeds.get(url, **{"If-None-Match": '"other"'}).status_code == 200
    earlier = feeds.get(url, **{"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"})
    assert earlier.status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110).
    both = feeds.get(url, **{"If-None-Match": '"other"', "If-Modified-Since": modified})
    assert both.status_code == 200


def test_unknown_rotated_and_malformed_tokens_get_the_same_404(feeds: Feeds) -> None:
    old = feeds.url("sam")
    first = feeds.get(old)
    assert first.status_code == 200
    rotated = feeds.publisher.rotate("alex-sam", "sam")
    assert rotated.url != old
    answers = [
        feeds.get(old),
        feeds.get(f"{feeds.base}/feeds/{'A' * 32}.ics"),
        feeds.get(f"{feeds.base}/feeds/short.ics"),
        feeds.get(f"{feeds.base}/feeds/{'%00' * 3}.ics"),
    ]
    assert {(r.status_code, r.content) for r in answers} == {(404, b"no such feed\n")}
    assert feeds.get(rotated.url).status_code == 200
    assert feeds.get(feeds.url("alex")).status_code == 200, "the other partner's URL stands"


def test_the_same_content_keeps_its_etag_and_a_change_gets_a_new_one(feeds: Feeds) -> None:
    url = feeds.url()
    before = feeds.get(url)
    feeds.clock.advance(timedelta(minutes=5))
    assert feeds.publisher.publish("alex-sam") == 0
    same = feeds.get(url)
    assert same.content == before.content
    assert same.headers["etag"] == before.headers["etag"]
    assert same.headers["last-modified"] == before.headers["last-modified"]
    # Skip the next date night, move the one after: the feed follows, SEQUENCE rises.
    couple = feeds.publisher._couples.get("alex-sam")
    assert couple is not None
    alex = couple.partner("alex")
    now = feeds.clock.now()
    upcoming = feed_occurrences(couple, alex, now, now + timedelta(days=30))
    skip, move = upcoming[0], upcoming[1]
    new_start = move.start + timedelta(days=1, hours=1)
    feeds.change(skip.id, skipped=True)
    feeds.change(move.id, moved_to=new_start)
    assert feeds.publisher.publish("alex-sam") == 2
    after = feeds.get(url, **{"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert after.headers["etag"] != before.headers["etag"]
    events = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(after.content).walk("VEVENT")}
    assert f"{skip.id}@hearth" not in events
    moved = events[f"{move.id}@hearth"]
    assert moved["DTSTART"].dt == new_start
    assert int(moved["SEQUENCE"]) == 1
    assert "Moved from" in str(moved["DESCRIPTION"])
    changes = feeds.answers.changes("alex-sam")
    assert changes[skip.id] == Change(skip.id, skipped=True)


def test_a_known_token_without_a_published_feed_gets_503_and_one_render(feeds: Feeds) -> None:
    url = feeds.url()
    token = url.rsplit("/", 1)[1].removesuffix(".ics")
    feeds.redis.delete(feed_key(token_hash(token)))
    responses = [feeds.get(url) for _ in range(3)]  # calendar apps poll; one render is queued
    assert [r.status_code for r in responses] == [503] * 3
    assert {r.headers["retry-after"] for r in responses} == {"30"}
    ids = feeds.redis.lrange(f"dramatiq:{REPLIES_QUEUE}", 0, -1)
    raw = feeds.redis.hmget(f"dramatiq:{REPLIES_QUEUE}.msgs", ids)
    messages = [json.loads(m) for m in raw if m is not None]
    assert [(m["actor_name"], m["kwargs"]) for m in messages] == [
        ("feed.render", {"couple": "alex-sam"})
    ]


def test_a_skip_texted_in_is_handled_and_the_feed_drops_it(feeds: Feeds) -> None:
    """The whole loop with a real Dramatiq worker: webhook → reply.received → feed.render."""
    couple = feeds.publisher._couples.get("alex-sam")
    assert couple is not None
    now = feeds.clock.now()
    [occ, *_] = feed_occurrences(couple, couple.partner("sam"), now, now + timedelta(days=10))
    # Sam was reminded of this date night: that text is what the reply answers.
    engine = feeds.replies.engine
    prompts = PromptLog(engine)
    send = next(s for s in sends_for(couple, occ) if s.partner == "sam")
    assert prompts.claim(Prompt.from_planned(send), now)
    assert prompts.mark_sent(send.event_id, "SM" + "0" * 32, now)
    url = feeds.url("sam")
    assert f"{occ.id}@hearth".encode() in feeds.get(url).content
    form = {"MessageSid": "SM" + secrets.token_hex(16), "From": "+15550000002", "Body": "skip"}
    signature = RequestValidator(webhook_token(feeds.settings)).compute_signature(
        feeds.base + "/sms/inbound", form
    )
    posted = httpx.post(f"{feeds.base}/sms/inbound", data=form,
                        headers={"X-Twilio-Signature": signature}, timeout=10)  # fmt: skip
    assert posted.status_code == 200
    broker = RedisBroker(url=feeds.settings.redis_url)  # type: ignore[no-untyped-call]
    reply_actor.declare(broker, min_backoff_ms=100, max_backoff_ms=1000)
    feed_actor.declare(broker, min_backoff_ms=100, max_backoff_ms=1000)
    runtime = Runtime(feeds.settings, clock=feeds.clock, redis=feeds.redis, engine=engine,
                      broker=broker)  # fmt: skip
    reply_actor.use(runtime.reply_handler())
    feed_actor.use(feeds.publisher)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=100)
    worker.start()
    try:
        wait_for(lambda: f"{occ.id}@hearth".encode() not in feeds.get(url).content, 30,
                 "the feed to drop the skipped date night")  # fmt: skip
    finally:
        worker.stop(timeout=10_000)
        broker.close()
    assert feeds.answers.changes("alex-sam")[occ.id].skipped


def test_access_logs_never_show_a_feed_token(feeds: Feeds) -> None:
    import logging

    from service.web.logs import RedactFeedTokens

    assert any(isinstance(f, RedactFeedTokens) for f in logging.getLogger("uvicorn.access").filters)
    token_path = feeds.url().split(feeds.base, 1)[1]
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", token_path + "?x=1", "1.1", 200), None,
    )  # fmt: skip
    RedactFeedTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /feeds/*** HTTP/1.1" 200'


def test_a_feed_request_while_redis_is_down_gets_503_with_retry_after_not_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped under a serving app: feeds and /healthz answer 503, the feed logs one
    line without a traceback, and once Redis is back the same URL serves again."""
    config = tmp_path / "couples"
    config.mkdir()
    (config / "alex-sam.yaml").write_text(COUPLE_YAML, encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    with EmbeddedRedis(tmp_path / "var") as server:
        for name, value in {
            "HEARTH_CONFIG_DIR": str(config),
            "HEARTH_DATA_DIR": str(tmp_path / "var"),
            "REDIS_URL": server.url,
            "DATABASE_URL": db_url,
        }.items():
            monkeypatch.setenv(name, value)
        migrate(db_url)
        settings = load_settings()
        clock = ManualClock(utc(2026, 11, 25, 12))
        engine = make_engine(db_url)
        redis = Redis.from_url(server.url)
        try:
            publisher = Runtime(settings, clock=clock, redis=redis, engine=engine).feed_publisher()
            publisher.publish("alex-sam")
            [path] = [u.url.split("/", 3)[3] for u in publisher.urls("alex-sam")[:1]]
            with Serving(create_app(settings, server.url, clock)) as base:
                assert httpx.get(f"{base}/{path}", timeout=10).status_code == 200
                server.stop()
                caplog.clear()

                down = httpx.get(f"{base}/{path}", timeout=30)
                health = httpx.get(f"{base}/healthz", timeout=30)

                assert down.status_code == 503
                assert down.headers["retry-after"] == "30"
                assert health.status_code == 503
                assert health.json()["redis"].startswith("unavailable")
                logged = [r for r in caplog.records if r.name == "hearth.web.feeds"]
                assert [r.levelname for r in logged] == ["WARNING"]
                assert logged[0].exc_info is None
                assert "\n" not in logged[0].getMessage()
                server.start()
                assert httpx.get(f"{base}/{path}", timeout=30).status_code == 200
        finally:
            redis.close()
            engine.dispose()


def _commands_sent(redis_url: str, action: Callable[[], object]) -> list[str]:
    """The commands clients sent to Redis while ``action`` ran (MONITOR), leaving out those a
    script ran inside Redis: one entry per round trip."""
    sentinel = "feeds-test-" + secrets.token_hex(4)
    with Redis.from_url(redis_url) as other, Redis.from_url(redis_url) as watcher:
        other.ping()  # connected before the monitor starts: its handshake is not counted
        with watcher.monitor() as monitor:
            action()
            other.echo(sentinel)
            sent = _until(monitor, sentinel)
    return sent


def _until(monitor: Monitor, sentinel: str) -> list[str]:
    sent = []
    while sentinel not in (found := monitor.next_command())["command"]:
        if found.get("client_type") != "lua":
            sent.append(str(found["command"]).split()[0].upper())
    return sent


def test_every_answer_costs_one_redis_round_trip(feeds: Feeds) -> None:
    url = feeds.url()
    first = feeds.get(url)
    etag = first.headers["etag"]
    feeds.get(url, **{"If-None-Match": etag})  # the script is loaded into Redis here, once
    redis_url = feeds.settings.redis_url
    assert redis_url is not None
    answers: list[httpx.Response] = []
    for request, command in (
        (lambda: feeds.get(url), "HMGET"),
        (lambda: feeds.get(url, **{"If-None-Match": etag}), "EVALSHA"),
        (lambda: feeds.get(url, **{"If-Modified-Since": first.headers["last-modified"]}),
         "EVALSHA"),
        (lambda: feeds.get(url, **{"If-None-Match": '"changed"'}), "EVALSHA"),
        (lambda: httpx.head(url, timeout=10), "EVALSHA"),
    ):  # fmt: skip
        assert _commands_sent(redis_url, lambda r=request: answers.append(r())) == [command]
    assert [r.status_code for r in answers] == [200, 304, 304, 200, 200]
    assert answers[0].content == answers[3].content == first.content
    assert answers[4].headers["content-length"] == str(len(first.content))
