"""Capability tokens: the secret URLs of a partner's feed and dashboard, and the service
secret they are keyed with.

A partner's token is HMAC-SHA256(secret, "<purpose>\\0couple\\0partner\\0nonce"), 192 bits in
base64url (32 characters, so ``https://<host>/feeds/<token>.ics`` fits Google's 256-character
"From URL" field for any host up to 200 characters), where ``nonce`` is 128 random bits drawn
when the token is made, and again on each rotation, and kept in SQL beside the token's
SHA-256. So:

- the secret alone derives nothing: without the nonce there is no token to compute, and a
  rotation draws a nonce no one can predict, so it revokes the old URL for good;
- the database alone opens nothing: it holds the nonce and the hash, not the token;
- ``hearth feed urls`` and ``hearth dashboard urls`` show a URL again by deriving it, with
  no plaintext copy of any token (no file of tokens to keep 0600, back up or leak);
- a request is found by the hash of what it presents, an index lookup: no comparison ever
  runs over a secret, so timing says nothing about how close a guess was.

The purpose keeps a feed's token and a dashboard's apart under one secret. Changing the
secret changes every URL; a leaked secret *and* database is answered by rotating every
URL (``hearth feed rotate --all``, ``hearth dashboard rotate``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from typing import TYPE_CHECKING, Literal

from service.local_secret import local_secret

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "TOKEN_SHAPE",
    "Purpose",
    "derive_token",
    "new_nonce",
    "service_secret",
    "token_hash",
]

Purpose = Literal["feed", "dashboard"]
TOKEN_BYTES = 24  # 192 bits
NONCE_BYTES = 16  # 128 bits
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
SECRET_FILE = "feed-secret"  # named when only feeds used it; renaming would change every URL


def new_nonce() -> str:
    return secrets.token_hex(NONCE_BYTES)


def derive_token(secret: bytes, purpose: Purpose, couple: str, partner: str, nonce: str) -> str:
    message = f"{purpose}\0{couple}\0{partner}\0{nonce}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def service_secret(configured: str | None, data_dir: Path) -> bytes:
    """``HEARTH_FEED_SECRET``, or a random secret kept in the data dir (made once, 0600)."""
    if configured:
        return configured.encode()
    return bytes.fromhex(local_secret(data_dir / SECRET_FILE, 32))
