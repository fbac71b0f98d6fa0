"""A secret made once per data dir and kept there (0600): the dev webhook token, the feed
secret. Two processes starting at once agree on the first one's (``O_EXCL``)."""

from __future__ import annotations

import os
import secrets
from typing import TYPE_CHECKING

from service.data_dir import private_directory

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["local_secret"]


def local_secret(path: Path, nbytes: int) -> str:
    """The hex secret in ``path``, made now with ``nbytes`` random bytes if there is none."""
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        pass
    private_directory(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    value = secrets.token_hex(nbytes)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n")
    return value
