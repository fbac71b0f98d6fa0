"""Which files a backup holds besides the database: the config directory's, and the data
dir's own (the secrets Hearth made there: the feed secret, the development webhook token;
any file Hearth keeps at the top of the data dir is taken, so a secret added later is not
left behind). Left out, because they are rebuilt or copied another way: the embedded Redis
(its own directory), ``run.json`` (a running process's address), the SQLite file and its
-wal/-shm (copied through SQLite), the outbox (taken on its own), half-written files.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from service.running import RUN_FILE

if TYPE_CHECKING:
    from service.settings import Settings

__all__ = ["config_files", "data_files", "differing_config"]


def data_files(settings: Settings, database: Path | None) -> dict[str, Path]:
    """The data dir's own files, by name (``database``: the SQLite file, if it is there)."""
    directory = settings.data_dir
    if not directory.is_dir():
        return {}
    skipped = {RUN_FILE}
    if database is not None:
        skipped |= {database.name + s for s in ("", "-wal", "-shm", "-journal")}
    outbox = settings.outbox_path
    found = {}
    for path in sorted(directory.iterdir()):
        if path.name in skipped or path.name.endswith((".tmp", ".partial", ".restoring")):
            continue
        if path.resolve() == outbox.resolve() or not path.is_file() or path.is_symlink():
            continue
        found[path.name] = path
    return found


def config_files(directory: Path) -> dict[str, Path]:
    """Every file under the config directory, by relative POSIX path (hidden ones, such as a
    ``.git`` directory, left out)."""
    if not directory.is_dir():
        return {}
    found = {}
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink():
            found[relative.as_posix()] = path
    return found


def differing_config(directory: Path, wanted: dict[str, bytes]) -> list[str]:
    """The config files that differ between ``directory`` and ``wanted`` (missing on either
    side, or other bytes); empty when the directory already holds exactly those files."""
    present = config_files(directory)
    names = set(present) | set(wanted)
    return sorted(
        n
        for n in names
        if n not in present or n not in wanted or present[n].read_bytes() != wanted[n]
    )
