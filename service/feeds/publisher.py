"""Publishing feeds: render once per change, keep the bytes and their ETag where HTTP reads.

Redis keys (``ns`` = ``hearth``):

    {ns}:feed:{token hash}   hash: couple, partner, etag, modified (HTTP date), body
    {ns}:feeds:{couple}      set: the token hashes now serving the couple's feeds
    {ns}:feed-render-requested:{couple}
                             a marker (with a TTL) while a render asked for by a feed
                             request is queued, so that requests queue one render, not many

``publish(couple)`` runs in the ``feed.render`` actor after anything that changes a feed (a
skip or move, a config edit, the daily roll of the window) and in ``hearth feed`` commands.
It renders each partner's feed, and keeps ``modified`` when the bytes did not change, so
If-Modified-Since stays truthful. The HTTP path only reads these keys.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.utils import format_datetime
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import quote

from service.domain.occurrences import occurrences
from service.feeds.render import FEED_FUTURE, FEED_PAST, FeedStamps, render_feed, shown_to
from service.feeds.tokens import derive_token, token_hash
from service.storage import FeedToken

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from redis import Redis

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Ritual
    from service.storage import AnswerLog, FeedTokens, RitualVersions

__all__ = ["FeedPublisher", "FeedUrl", "feed_key", "render_requested_key"]


def feed_key(hashed: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feed:{hashed}"


def render_requested_key(couple: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feed-render-requested:{couple}"


class CoupleSource(Protocol):
    def get(self, couple_id: str) -> Couple | None: ...


@dataclass(frozen=True, slots=True)
class FeedUrl:
    partner: str
    name: str
    url: str  # http(s), as HEARTH_PUBLIC_URL has it: http on a local run
    webcal: str
    google: str

    @property
    def scheme(self) -> str:
        """``http`` or ``https``: what ``url`` really uses."""
        return self.url.partition("://")[0]


class FeedPublisher:
    def __init__(
        self,
        couples: CoupleSource,
        tokens: FeedTokens,
        versions: RitualVersions,
        answers: AnswerLog,
        redis: Redis,
        clock: Clock,
        secret: bytes,
        public_url: str,
        *,
        past: timedelta = FEED_PAST,
        future: timedelta = FEED_FUTURE,
        namespace: str = "hearth",
    ) -> None:
        self._couples = couples
        self._tokens = tokens
        self._versions = versions
        self._answers = answers
        self._redis = redis
        self._clock = clock
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._past = past
        self._future = future
        self._ns = namespace

    def publish(self, couple_id: str) -> int:
        """Render and store the couple's feeds; returns how many changed. A couple no longer
        configured loses its feeds (their URLs answer 404)."""
        couple = self._couples.get(couple_id)
        if couple is None:
            self._unpublish(couple_id, keep=set())
            return 0
        now = self._clock.now()
        tokens = self._ensure_tokens(couple, now)
        hashes = {r.id: _calendar_hash(r) for r in couple.rituals if r.calendar}
        stamped = self._answers.stamped_changes(couple.id)
        stamps = FeedStamps(
            rituals=self._versions.update(couple.id, hashes, now),
            changes={i: (s.revision, s.updated_at) for i, s in stamped.items()},
        )
        changes = {i: s.change for i, s in stamped.items()}
        window = (now - self._past, now + self._future)
        every = occurrences(couple, *window, changes, calendar_only=True)
        changed = 0
        for partner in couple.partners:
            body = render_feed(couple, partner, shown_to(partner, every), stamps, window=window)
            changed += self._store(couple.id, partner.key, tokens[partner.key], body, now)
        self._unpublish(couple.id, keep={t.token_hash for t in tokens.values()})
        return changed

    def urls(self, couple_id: str) -> list[FeedUrl]:
        """Each partner's feed URLs (tokens are made on first use)."""
        couple = self._couples.get(couple_id)
        if couple is None:
            raise KeyError(couple_id)
        tokens = self._ensure_tokens(couple, self._clock.now())
        out = []
        for partner in couple.partners:
            t = tokens[partner.key]
            token = derive_token(self._secret, couple.id, partner.key, t.generation)
            url = f"{self._public_url}/feeds/{token}.ics"
            webcal = "webcal://" + url.split("://", 1)[1]
            google = "https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe="")
            out.append(FeedUrl(partner.key, partner.name, url, webcal, google))
        return out

    def rotate(self, couple_id: str, partner_key: str) -> FeedUrl:
        """A new token for the partner; the old URL answers 404 from this moment."""
        couple = self._couples.get(couple_id)
        if couple is None:
            raise KeyError(couple_id)
        partner = couple.partner(partner_key)
        now = self._clock.now()
        old = self._ensure_tokens(couple, now)[partner.key]
        generation = old.generation + 1
        token = derive_token(self._secret, couple.id, partner.key, generation)
        self._tokens.put(FeedToken(couple.id, partner.key, generation, token_hash(token)), now)
        self._redis.delete(feed_key(old.token_hash, self._ns))
        self._redis.srem(self._couple_key(couple.id), old.token_hash)
        self.publish(couple.id)
        return next(u for u in self.urls(couple.id) if u.partner == partner.key)

    def served(self, couple_id: str, partner_key: str) -> bytes | None:
        """The exact bytes the partner's URL serves now, if published."""
        t = self._tokens.of_couple(couple_id).get(partner_key)
        if t is None:
            return None
        return cast("bytes | None", self._redis.hget(feed_key(t.token_hash, self._ns), "body"))

    def _ensure_tokens(self, couple: Couple, now: datetime) -> dict[str, FeedToken]:
        tokens = self._tokens.of_couple(couple.id)
        for partner in couple.partners:
            if partner.key not in tokens:
                token = derive_token(self._secret, couple.id, partner.key, 1)
                made = FeedToken(couple.id, partner.key, 1, token_hash(token))
                self._tokens.put(made, now)
                tokens[partner.key] = made
        return tokens

    def _store(
        self, couple: str, partner: str, token: FeedToken, body: bytes, now: datetime
    ) -> int:
        key = feed_key(token.token_hash, self._ns)
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        old = cast("list[bytes | None]", self._redis.hmget(key, "etag", "modified"))
        old_etag, old_modified = old
        if old_etag is not None and old_etag.decode() == etag and old_modified is not None:
            return 0
        modified = format_datetime(now.replace(microsecond=0), usegmt=True)
        pipe = self._redis.pipeline()
        pipe.hset(key, mapping={"couple": couple, "partner": partner, "etag": etag,
                                "modified": modified, "body": body})  # fmt: skip
        pipe.sadd(self._couple_key(couple), token.token_hash)
        pipe.execute()
        return 1

    def _unpublish(self, couple: str, keep: set[str]) -> None:
        members = cast("set[bytes]", self._redis.smembers(self._couple_key(couple)))
        for member in members:
            hashed = member.decode()
            if hashed not in keep:
                self._redis.delete(feed_key(hashed, self._ns))
                self._redis.srem(self._couple_key(couple), hashed)

    def _couple_key(self, couple: str) -> str:
        return f"{self._ns}:feeds:{couple}"


def _calendar_hash(ritual: Ritual) -> str:
    """What a feed shows of the ritual: a change here raises its events' SEQUENCE."""
    shown = ritual.model_dump(
        mode="json", include={"name", "kind", "duration", "alarms", "texts", "who", "timezone"}
    )
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
