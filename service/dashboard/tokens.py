"""Dashboard tokens: random, shown again on demand, never stored, looked up by hash.

A partner's token is HMAC-SHA256(secret, "dashboard\\0couple\\0partner\\0nonce"), 192 bits
in base64url, where ``nonce`` is 128 random bits drawn when the token is made (and again on
rotation) and kept in SQL beside the token's SHA-256 (``dashboard_tokens``). So:

- the token is random: knowing the secret does not predict it (the feed's token, derived
  from a generation counter, is predictable to whoever holds the secret);
- the database alone opens nothing: it holds the nonce and the hash, not the token;
- ``hearth dashboard urls`` shows a URL again by deriving it, with no plaintext copy of the
  token anywhere (no secrets file of tokens to keep 0600, back up or leak);
- a request is found by the hash of what it presents, an index lookup: no comparison ever
  runs over a secret, so timing says nothing about how close a guess was.

The secret is the service's (``HEARTH_FEED_SECRET``, or the data dir's, ``Runtime.secret``),
kept apart from the feed's tokens by the ``dashboard`` prefix. Changing it changes every
dashboard URL, as it does every feed URL.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.storage import DashboardToken

if TYPE_CHECKING:
    from datetime import datetime

    from service.storage import DashboardTokens

__all__ = [
    "TOKEN_SHAPE",
    "DashboardLinks",
    "DashboardUrl",
    "derive_token",
    "new_nonce",
    "token_hash",
]

TOKEN_BYTES = 24  # 192 bits
NONCE_BYTES = 16  # 128 bits
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
PATH = "/c/"


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def derive_token(secret: bytes, couple: str, partner: str, nonce: str) -> str:
    message = f"dashboard\0{couple}\0{partner}\0{nonce}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class DashboardUrl:
    couple: str
    partner: str
    url: str


class DashboardLinks:
    """Each partner's dashboard URL: made on first use, shown again, rotated, resolved."""

    def __init__(self, tokens: DashboardTokens, secret: bytes, public_url: str) -> None:
        self._tokens = tokens
        self._secret = secret
        self._public_url = public_url.rstrip("/")

    def urls(self, couple: str, partners: list[str], now: datetime) -> list[DashboardUrl]:
        """The URL of each of ``partners`` (partner keys), in that order."""
        current = self._tokens.of_couple(couple)
        out = []
        for partner in partners:
            token = current.get(partner)
            if token is None:
                token = self._make(couple, partner, now, replace=False)
            out.append(self._url(token))
        return out

    def rotate(self, couple: str, partner: str, now: datetime) -> DashboardUrl:
        """A new URL for the partner; the old one answers 404 from this moment."""
        return self._url(self._make(couple, partner, now, replace=True))

    def find(self, token: str) -> DashboardToken | None:
        """Whose dashboard ``token`` opens, or None (malformed, unknown or rotated)."""
        if not TOKEN_SHAPE.fullmatch(token):
            return None
        return self._tokens.find(token_hash(token))

    def _make(self, couple: str, partner: str, now: datetime, *, replace: bool) -> DashboardToken:
        nonce = new_nonce()
        made = DashboardToken(
            couple, partner, nonce, token_hash(derive_token(self._secret, couple, partner, nonce))
        )
        if self._tokens.put(made, now, replace=replace):
            return made
        return self._tokens.of_couple(couple)[partner]  # another process made it first

    def _url(self, token: DashboardToken) -> DashboardUrl:
        raw = derive_token(self._secret, token.couple, token.partner, token.nonce)
        return DashboardUrl(token.couple, token.partner, f"{self._public_url}{PATH}{raw}")
