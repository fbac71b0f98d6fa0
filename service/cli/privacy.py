"""``hearth export``, ``hearth forget``, ``hearth rotate-key`` and ``hearth secret-key``.

Export and forget reach Hearth's Redis (``REDIS_URL``, or the data dir's embedded server,
started for the command and stopped after it when no Hearth is running) and its database,
so they work whether or not Hearth runs; ``service/privacy.py`` does the work.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service.cli.serve import settings_or_exit
from service.domain.errors import HearthError

if TYPE_CHECKING:
    from service.runtime import Runtime
    from service.settings import Settings

__all__ = ["export", "forget", "rotate_key", "secret_key"]


def export(couple: Annotated[str, typer.Argument(help="The couple's id.")]) -> None:
    """Print everything Hearth holds about a couple as one JSON document (see README)."""
    from service.privacy import export_couple  # noqa: PLC0415

    with _runtime(settings_or_exit()) as runtime:
        document = export_couple(runtime, couple, runtime.clock.now())
    typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def forget(
    couple: Annotated[str, typer.Argument(help="The couple's id.")],
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete everything Hearth holds about a couple whose file is gone from the config dir."""
    from service.privacy import StillConfigured, forget_couple  # noqa: PLC0415

    if not yes and not typer.confirm(f"Delete everything Hearth holds about {couple}?"):
        raise typer.Exit(1)
    with _runtime(settings_or_exit()) as runtime:
        try:
            gone = forget_couple(runtime, couple)
        except StillConfigured as e:
            _fail(str(e))
    rows = sum(gone.rows.values())
    typer.echo(
        f"forgot {couple}: {rows} database rows, {gone.redis_keys} Redis keys and "
        f"{gone.redis_entries} entries, {gone.outbox_lines} outbox lines, "
        f"{len(gone.files)} files"
    )
    for warning in gone.warnings:
        typer.echo(f"warning: {warning}", err=True)


def rotate_key(
    old: Annotated[
        list[str] | None,
        typer.Option(
            help="An earlier key (repeatable); prefer HEARTH_OLD_SECRET_KEYS, which keeps "
            "keys out of the process list."
        ),
    ] = None,
) -> None:
    """Re-encrypt journal text and raw replies under HEARTH_SECRET_KEY (idempotent, resumable).

    Values under HEARTH_OLD_SECRET_KEYS (or --old) are opened and sealed again; plaintext
    rows are sealed. Without HEARTH_SECRET_KEY, everything is decrypted to plaintext.
    """
    from service.encryption import SecretKey, SecretKeyInvalid  # noqa: PLC0415
    from service.storage import StorageError, make_engine, migrate  # noqa: PLC0415
    from service.storage.rekeying import rekey  # noqa: PLC0415

    settings = settings_or_exit()
    cipher = settings.cipher
    try:
        extra = [SecretKey.parse(k, "--old") for k in old or ()]
    except SecretKeyInvalid as e:
        _fail(str(e))
    cipher = cipher.also_opening(extra)
    try:
        migrate(settings.log_url)
        engine = make_engine(settings.log_url)
        try:
            done = rekey(engine, cipher)
        finally:
            engine.dispose()
    except (StorageError, HearthError) as e:
        _fail(str(e))
    under = f"key {cipher.current.id}" if cipher.current else "no key (plaintext)"
    typer.echo(f"re-encrypted {done.answers} answers and {done.replies} replies under {under}")


def secret_key() -> None:
    """Print a new key for HEARTH_SECRET_KEY (32 random bytes, urlsafe base64)."""
    from service.encryption import generate_key  # noqa: PLC0415

    typer.echo(generate_key())


@contextmanager
def _runtime(settings: Settings) -> Iterator[Runtime]:
    from service.embedded_redis import EmbeddedRedis  # noqa: PLC0415
    from service.runtime import Runtime  # noqa: PLC0415
    from service.storage import StorageError, migrate  # noqa: PLC0415

    try:
        migrate(settings.log_url)
    except StorageError as e:
        _fail(str(e))
    embedded = None if settings.redis_url else EmbeddedRedis(settings.data_dir.resolve())
    url = embedded.start() if embedded is not None else None
    runtime = Runtime(settings, redis_url=url)
    try:
        yield runtime
    finally:
        runtime.close()
        if embedded is not None:
            embedded.stop()  # only if this command started it


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
