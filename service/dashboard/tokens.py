"""Each partner's dashboard URL, ``/c/<token>``: a capability token (``service/capabilities.py``,
purpose ``dashboard``) made on first use, shown again, rotated and resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from service.capabilities import TOKEN_SHAPE, derive_token, new_nonce, token_hash
from service.storage import DashboardToken

if TYPE_CHECKING:
    from datetime import datetime

    from service.storage import DashboardTokens

__all__ = ["DashboardLinks", "DashboardUrl"]

PATH = "/c/"


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
        raw = derive_token(self._secret, "dashboard", couple, partner, nonce)
        made = DashboardToken(couple, partner, nonce, token_hash(raw))
        if self._tokens.put(made, now, replace=replace):
            return made
        return self._tokens.of_couple(couple)[partner]  # another process made it first

    def _url(self, token: DashboardToken) -> DashboardUrl:
        raw = derive_token(self._secret, "dashboard", token.couple, token.partner, token.nonce)
        return DashboardUrl(token.couple, token.partner, f"{self._public_url}{PATH}{raw}")
