"""``hearth backup PATH`` and ``hearth restore PATH`` (``service/backups/``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.serve import settings_or_exit

__all__ = ["backup", "restore"]


def backup(
    path: Annotated[Path, typer.Argument(help="The archive to write (a new file, 0600).")],
) -> None:
    """Back up the database, the config directory and the data dir's secrets, while running."""
    from service.backups import backup as make  # noqa: PLC0415 - heavy imports

    settings = settings_or_exit()
    made = make(settings, path)
    typer.echo(
        f"backed up to {path}: the {made.manifest.database} database {made.database} at "
        f"revision {made.manifest.revision}, {_count(made.config, 'config file')}, "
        f"{_count(made.data, 'data dir file')} ({', '.join(made.data) or 'none'})"
        + (", the outbox" if made.outbox else "")
    )
    if made.manifest.secrets_from_environment:
        typer.echo(
            "not in the backup, keep them safe yourself: "
            + ", ".join(made.manifest.secrets_from_environment)
        )


def restore(
    path: Annotated[Path, typer.Argument(help="An archive written by `hearth backup`.")],
) -> None:
    """Restore a backup into a fresh data dir and an empty database (Redis may be empty)."""
    from service.backups import restore as bring_back  # noqa: PLC0415 - heavy imports

    settings = settings_or_exit()
    done = bring_back(settings, path)
    m = done.manifest
    config = (
        f"{_count(done.config, 'config file')} into {settings.config_dir}"
        if done.config_written
        else f"the config in {settings.config_dir} (already the backup's)"
    )
    typer.echo(
        f"restored {path} (made {m.created_at} by Hearth {m.hearth_version}): the database "
        f"{done.database}, {config}, {_count(done.data, 'data dir file')} into "
        f"{settings.data_dir}" + (", the outbox" if done.outbox else "")
    )
    for name in done.missing_secrets:
        typer.echo(
            f"warning: the backup was made with {name} set; set it to the same value "
            f"before starting Hearth ({_WHY[name]})",
            err=True,
        )


_WHY = {
    "HEARTH_SECRET_KEY": "journal text and replies sealed under it cannot be read without it",
    "HEARTH_OLD_SECRET_KEYS": "rows still sealed under an old key need it",
    "HEARTH_FEED_SECRET": "every feed URL derives from it",
    "TWILIO_AUTH_TOKEN": "real SMS and webhook signatures need it",
}


def _count(items: list[str], noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"
