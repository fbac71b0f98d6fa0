"""Publishing feeds: render once per change, keep the bytes and their ETag where HTTP reads.

Redis keys (``ns`` = ``hearth``):

    {ns}:feed:{token hash}   hash: couple, partner, etag, modified (HTTP date), modified_s
                             (the same, in Unix seconds), body
    {ns}:feeds:{couple}      set: the token hashes whose feeds are stored for the couple
    {ns}:feeds-revoked:{couple}
                             set: the hashes of the couple's rotated tokens; nothing is ever
                             stored under one again
    {ns}:feed-render-requested:{couple}
                             a marker (with a TTL) while a render asked for by a feed
                             request is queued, so that requests queue one render, not many

``publish(couple)`` runs in the ``feed.render`` actor after anything that changes a feed (a
skip or move, a config edit, the daily roll of the window) and in ``hearth feed`` commands.
It renders each partner's feed, and keeps ``modified`` when the bytes did not change, so
If-Modified-Since stays truthful. The HTTP path only reads these keys.

A rotation changes the token in SQL first, then, in one script, marks the old hash revoked
and deletes its feed. A render that read the old token before the rotation stores through a
script that refuses a revoked hash, so it can never bring the old URL back, whichever of
the two runs first. A token's nonce is random, so a revoked hash never becomes current again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from email.utils import format_datetime
from typing import TYPE_CHECKING, Protocol, cast
from urllib.parse import quote

from service.capabilities import derive_token, new_nonce, token_hash
from service.domain.feed_horizons import FEED_LIMITS
from service.domain.occurrences import occurrences
from service.feeds.render import FeedStamps, published_feed, shown_to
from service.storage import FeedToken

if TYPE_CHECKING:
    from datetime import datetime

    from redis import Redis

    from service.domain.clock import Clock
    from service.domain.couples import Couple, Ritual
    from service.domain.feed_horizons import FeedLimits
    from service.storage import AnswerLog, FeedTokens, RitualVersions

__all__ = [
    "GOOGLE_URL_LIMIT",
    "FeedPublisher",
    "FeedUrl",
    "feed_key",
    "render_requested_key",
    "revoked_key",
    "served_key",
]

log = logging.getLogger("hearth.feeds")

# Google Calendar's "From URL" field fails silently above 256 UTF-16 code units.
GOOGLE_URL_LIMIT = 256


def feed_key(hashed: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feed:{hashed}"


def served_key(couple: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feeds:{couple}"


def revoked_key(couple: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feeds-revoked:{couple}"


def render_requested_key(couple: str, namespace: str = "hearth") -> str:
    return f"{namespace}:feed-render-requested:{couple}"


# KEYS: feed, served, revoked. ARGV: hash, couple, partner, etag, modified, modified_s, body.
# Returns -1 (revoked: not stored), 0 (unchanged) or 1 (stored).
_STORE = """
if redis.call('SISMEMBER', KEYS[3], ARGV[1]) == 1 then return -1 end
redis.call('SADD', KEYS[2], ARGV[1])
local old = redis.call('HMGET', KEYS[1], 'etag', 'modified', 'modified_s')
if old[1] == ARGV[4] and old[2] and old[3] then return 0 end
redis.call('HSET', KEYS[1], 'couple', ARGV[2], 'partner', ARGV[3], 'etag', ARGV[4],
           'modified', ARGV[5], 'modified_s', ARGV[6], 'body', ARGV[7])
return 1
"""
# KEYS: feed, served, revoked. ARGV: hash.
_REVOKE = """
redis.call('SADD', KEYS[3], ARGV[1])
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""


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

    @property
    def too_long_for_google(self) -> bool:
        """Whether the https URL overflows Google's "From URL" field (a long public URL)."""
        https = "https://" + self.url.partition("://")[2]
        return len(https.encode("utf-16-le")) // 2 > GOOGLE_URL_LIMIT


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
        limits: FeedLimits = FEED_LIMITS,
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
        self._limits = limits
        self._ns = namespace
        self._store_script = redis.register_script(_STORE)
        self._revoke_script = redis.register_script(_REVOKE)

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
        every = occurrences(couple, *self._limits.window(now), changes, calendar_only=True)
        changed = 0
        for partner in couple.partners:
            found = shown_to(partner, every)
            feed = published_feed(couple, partner, found, stamps, now=now, limits=self._limits)
            if not feed.kept_floor:
                log.warning(
                    "feed of %s/%s: its calendar rituals' events are too large for 8 weeks "
                    "within the limits; shown for less",
                    couple.id,
                    partner.key,
                )
            changed += self._store(tokens[partner.key], feed.body, now)
        # Read again: a rotation since the first read must not lose its new feed here.
        current = self._tokens.of_couple(couple.id)
        self._unpublish(couple.id, keep={t.token_hash for t in current.values()})
        return changed

    def urls(self, couple_id: str) -> list[FeedUrl]:
        """Each partner's feed URLs (tokens are made on first use)."""
        couple = self._couples.get(couple_id)
        if couple is None:
            raise KeyError(couple_id)
        tokens = self._ensure_tokens(couple, self._clock.now())
        return [self._url(tokens[p.key], p.name) for p in couple.partners]

    def rotate(self, couple_id: str, partner_key: str) -> FeedUrl:
        """A new token for the partner; the old URL answers 404 from this moment."""
        couple = self._couples.get(couple_id)
        if couple is None:
            raise KeyError(couple_id)
        partner = couple.partner(partner_key)
        self._ensure_tokens(couple, self._clock.now())
        self._rotate(couple.id, partner.key)
        self.publish(couple.id)
        return next(u for u in self.urls(couple.id) if u.partner == partner.key)

    def rotate_all(self, configured: list[str]) -> int:
        """A new token for every partner who has one (configured or not), then the
        ``configured`` couples republished; returns how many tokens were rotated."""
        rotated = 0
        for couple_id in self._tokens.couples():
            for partner_key in self._tokens.of_couple(couple_id):
                self._rotate(couple_id, partner_key)
                rotated += 1
        for couple_id in configured:
            self.publish(couple_id)
        return rotated

    def served(self, couple_id: str, partner_key: str) -> bytes | None:
        """The exact bytes the partner's URL serves now, if published."""
        t = self._tokens.of_couple(couple_id).get(partner_key)
        if t is None:
            return None
        return cast("bytes | None", self._redis.hget(feed_key(t.token_hash, self._ns), "body"))

    def _rotate(self, couple_id: str, partner_key: str) -> None:
        """SQL first (a compare-and-set, retried if another rotation won), then Redis: the
        old hash revoked and its feed deleted in one step."""
        now = self._clock.now()
        while True:
            old = self._tokens.of_couple(couple_id)[partner_key]
            new = self._token(couple_id, partner_key, old.generation + 1)
            if self._tokens.replace(old, new, now):
                break
        keys = [feed_key(old.token_hash, self._ns), served_key(couple_id, self._ns),
                revoked_key(couple_id, self._ns)]  # fmt: skip
        self._revoke_script(keys=keys, args=[old.token_hash])

    def _ensure_tokens(self, couple: Couple, now: datetime) -> dict[str, FeedToken]:
        tokens = self._tokens.of_couple(couple.id)
        for partner in couple.partners:
            if partner.key not in tokens:
                made = self._token(couple.id, partner.key, 1)
                tokens[partner.key] = self._tokens.make(made, now)
        return tokens

    def _token(self, couple: str, partner: str, generation: int) -> FeedToken:
        nonce = new_nonce()
        raw = derive_token(self._secret, "feed", couple, partner, nonce)
        return FeedToken(couple, partner, generation, nonce, token_hash(raw))

    def _url(self, token: FeedToken, name: str) -> FeedUrl:
        raw = derive_token(self._secret, "feed", token.couple, token.partner, token.nonce)
        url = f"{self._public_url}/feeds/{raw}.ics"
        webcal = "webcal://" + url.split("://", 1)[1]
        google = "https://calendar.google.com/calendar/r?cid=" + quote(webcal, safe="")
        return FeedUrl(token.partner, name, url, webcal, google)

    def _store(self, token: FeedToken, body: bytes, now: datetime) -> int:
        """Store ``body`` under the token's hash unless it was revoked meanwhile (a render
        that began before a rotation); 1 if the bytes changed."""
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        at = now.replace(microsecond=0)
        keys = [feed_key(token.token_hash, self._ns), served_key(token.couple, self._ns),
                revoked_key(token.couple, self._ns)]  # fmt: skip
        args: list[str | int | bytes] = [token.token_hash, token.couple, token.partner, etag,
                format_datetime(at, usegmt=True), int(at.timestamp()), body]  # fmt: skip
        return max(0, int(cast("int", self._store_script(keys=keys, args=args))))

    def _unpublish(self, couple: str, keep: set[str]) -> None:
        served = served_key(couple, self._ns)
        members = cast("set[bytes]", self._redis.smembers(served))
        for member in members:
            hashed = member.decode()
            if hashed not in keep:
                self._redis.delete(feed_key(hashed, self._ns))
                self._redis.srem(served, hashed)


def _calendar_hash(ritual: Ritual) -> str:
    """What a feed shows of the ritual: a change here raises its events' SEQUENCE."""
    shown = ritual.model_dump(
        mode="json", include={"name", "kind", "duration", "alarms", "texts", "who", "timezone"}
    )
    return hashlib.sha256(json.dumps(shown, sort_keys=True).encode()).hexdigest()
