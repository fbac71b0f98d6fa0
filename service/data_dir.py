"""The data directory holds the couples' data (the SQLite log, the outbox, secrets, the
embedded Redis): it is kept 0700, so nobody but Hearth's user can list or open what is in it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["private_directory"]


def private_directory(path: Path) -> Path:
    """Create ``path`` 0700 (its missing parents as usual), or take group and other
    permissions away from an existing one this user owns; returns ``path``."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        path.chmod(0o700)
    return path
