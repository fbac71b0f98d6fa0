"""Encryption at rest for the partners' own words: journal text and raw reply bodies.

With ``HEARTH_SECRET_KEY`` set, each such value is stored sealed with AES-256-GCM (an
authenticated cipher: a changed byte fails to open rather than reading as something else):

    hearth-sealed:v1:<key id>:<base64url(12-byte nonce ‖ ciphertext ‖ 16-byte tag)>

The key id is the first 8 hex digits of SHA-256 over the key, so a reader can tell which key
sealed a value without trying each. The column the value lives in is the associated data,
so a sealed journal entry cannot be passed off as a reply. A value without the prefix is
plaintext (written before encryption was turned on) and reads as it is; a value sealed
under a key that is not the current one nor one of ``HEARTH_OLD_SECRET_KEYS`` fails with
``SealedUnreadable``, naming the key id. ``hearth rotate-key`` re-seals every value under
the current key (``service/storage/rekeying.py``).

A key is 32 random bytes in urlsafe base64 (44 characters with its ``=``, the form of
``cryptography``'s ``Fernet.generate_key()``); ``hearth secret-key`` prints a new one.

    HearthError
    ├── SecretKeyInvalid   HEARTH_SECRET_KEY or an old key is not 32 bytes of base64url
    └── SealedUnreadable   a stored value was sealed under a key Hearth was not given
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from service.domain.errors import HearthError

__all__ = [
    "PREFIX",
    "Cipher",
    "Column",
    "SealedUnreadable",
    "SecretKey",
    "SecretKeyInvalid",
    "generate_key",
]

PREFIX = "hearth-sealed:v1:"
KEY_BYTES = 32
NONCE_BYTES = 12
# Where a sealed value lives: its associated data, so values cannot be moved between columns.
Column = Literal["replies.raw", "answers.note"]


class SecretKeyInvalid(HearthError):
    """A key is not 32 bytes in urlsafe base64 (the value itself is never repeated)."""


class SealedUnreadable(HearthError):
    """A stored value was sealed under a key this process was not given, or was altered."""


@dataclass(frozen=True, slots=True)
class SecretKey:
    """32 key bytes and their public id."""

    key: bytes

    @classmethod
    def parse(cls, text: str, name: str = "HEARTH_SECRET_KEY") -> SecretKey:
        """The key ``text`` spells (urlsafe base64 of 32 bytes, padding optional)."""
        raw = text.strip()
        try:
            key = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            key = b""
        if len(key) != KEY_BYTES or not raw:
            raise SecretKeyInvalid(
                f"{name} must be {KEY_BYTES} random bytes in urlsafe base64 (44 characters, "
                "such as `hearth secret-key` prints)"
            )
        return cls(key)

    @property
    def id(self) -> str:
        """8 hex digits naming the key in every value it seals (not secret)."""
        return hashlib.sha256(b"hearth key id\0" + self.key).hexdigest()[:8]


def generate_key() -> str:
    """A new key in the form ``HEARTH_SECRET_KEY`` takes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode()


class Cipher:
    """Seals with the current key (none: stores plaintext); opens with it or an old one."""

    def __init__(self, current: SecretKey | None = None, old: Sequence[SecretKey] = ()) -> None:
        self.current = current
        self.old = tuple(old)
        self._keys = {k.id: k for k in (*old, *([current] if current else []))}

    def also_opening(self, old: Sequence[SecretKey]) -> Cipher:
        """This cipher, able to open values under ``old`` keys too."""
        return Cipher(self.current, [*self.old, *old])

    @property
    def current_prefix(self) -> str | None:
        """What every value sealed under the current key starts with; None without a key."""
        return f"{PREFIX}{self.current.id}:" if self.current else None

    def seal(self, text: str, column: Column) -> str:
        """``text`` as stored: sealed under the current key, or as it is without one."""
        if self.current is None:
            return text
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(self.current.key).encrypt(nonce, text.encode(), column.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}{self.current.id}:{token}"

    def open(self, stored: str, column: Column) -> str:
        """The text ``stored`` holds: opened if sealed, as it is if plaintext."""
        if not is_sealed(stored):
            return stored
        from cryptography.exceptions import InvalidTag  # noqa: PLC0415
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: PLC0415

        key_id, _, token = stored.removeprefix(PREFIX).partition(":")
        key = self._keys.get(key_id)
        if key is None:
            raise SealedUnreadable(
                f"a stored value is sealed under key {key_id}, which is neither "
                "HEARTH_SECRET_KEY nor one of HEARTH_OLD_SECRET_KEYS"
            )
        try:
            blob = base64.urlsafe_b64decode(token)
            plain = AESGCM(key.key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], column.encode())
        except (InvalidTag, binascii.Error, ValueError):
            raise SealedUnreadable(
                f"a stored value sealed under key {key_id} does not open: it was altered"
            ) from None
        return plain.decode()

    def is_current(self, stored: str) -> bool:
        """Whether ``stored`` is as the current key would store it (sealed under it, or
        plaintext when there is no key): what ``rotate-key`` leaves alone."""
        prefix = self.current_prefix
        return stored.startswith(prefix) if prefix else not is_sealed(stored)


def is_sealed(stored: str) -> bool:
    return stored.startswith(PREFIX)
