"""What goes wrong with the prompt log's database, said with its URL (password hidden).

    HearthError
    └── StorageError   the database is unreachable, refuses a statement, or is at a
                       migration this Hearth does not know

Driver exceptions become a ``StorageError`` where the storage package meets the driver.
"""

from __future__ import annotations

import re

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from service.domain.errors import HearthError

__all__ = ["StorageError", "redact_url"]

_USERINFO_PASSWORD = re.compile(r"(//[^:/@]*):[^@/]*@")


class StorageError(HearthError):
    """The log's database failed; ``url`` is the database's URL with any password as ``***``."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = redact_url(url)
        self.reason = reason
        super().__init__(f"database {self.url}: {reason}")

    @classmethod
    def from_dbapi(cls, url: str, error: DBAPIError) -> StorageError:
        """The driver's own first line ('connection refused', 'database is locked', …)."""
        lines = str(error.orig).strip().splitlines() or [type(error.orig).__name__]
        return cls(url, lines[0])


def redact_url(url: str) -> str:
    """``url`` with its password replaced by ``***``; safe to log and to show."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _USERINFO_PASSWORD.sub(r"\1:***@", url)
