"""Feed tokens: unguessable, derived rather than stored, and looked up by hash.

A token is HMAC-SHA256(feed secret, "couple\\0partner\\0generation"), 192 bits in base64url.
The database keeps only SHA-256 of it (``feed_tokens.token_hash``), so a leaked database
opens no feed; ``hearth feed urls`` can show a URL again by deriving it from the secret; a
rotation raises the generation, and the old token's hash is gone at once. A request is
looked up by the hash of what it presents, so no comparison ever runs over the secret
itself and its timing says nothing about how close a guess was.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import TYPE_CHECKING

from service.local_secret import local_secret

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["TOKEN_SHAPE", "derive_token", "feed_secret", "token_hash"]

TOKEN_BYTES = 24  # 192 bits
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{32}")
SECRET_FILE = "feed-secret"


def derive_token(secret: bytes, couple: str, partner: str, generation: int) -> str:
    message = f"{couple}\0{partner}\0{generation}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:TOKEN_BYTES]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def feed_secret(configured: str | None, data_dir: Path) -> bytes:
    """``HEARTH_FEED_SECRET``, or a random secret kept in the data dir (made once, 0600)."""
    if configured:
        return configured.encode()
    return bytes.fromhex(local_secret(data_dir / SECRET_FILE, 32))
