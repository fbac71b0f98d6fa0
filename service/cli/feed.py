"""``hearth feed urls | rotate | export``: a partner's calendar subscription, from the shell."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service import running
from service.cli.serve import settings_or_exit
from service.domain.errors import CoupleFileInvalid, HearthError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from redis import Redis

    from service.domain.couples import Partner
    from service.feeds.publisher import FeedPublisher, FeedUrl
    from service.settings import Settings

__all__ = ["feed_app"]

feed_app = typer.Typer(
    name="feed", help="Calendar feed URLs, rotation and the exact bytes served.",
    no_args_is_help=True,
)  # fmt: skip


@feed_app.command("urls")
def urls(
    couple: Annotated[str | None, typer.Argument(help="One couple's id (default: all).")] = None,
) -> None:
    """Each partner's feed URLs: http(s), webcal, and a Google Calendar add-by-URL link."""
    settings, _ = running.local_settings(settings_or_exit())
    redis, answering = _redis(settings, required=False)
    publisher = _publisher(settings, redis)
    from service.config import load_directory  # noqa: PLC0415

    couples = sorted(load_directory(settings.config_dir).couples)
    if couple is not None:
        if couple not in couples:
            _fail(f"no couple {couple!r} in {settings.config_dir} (couples: {', '.join(couples)})")
        couples = [couple]
    for couple_id in couples:
        for url in publisher.urls(couple_id):
            typer.echo(f"{couple_id} {url.name}")
            _echo_urls(url)
        if answering:
            publisher.publish(couple_id)
    if not answering:
        typer.echo("(Hearth is not running: the feeds are published when it starts)", err=True)


@feed_app.command("rotate")
def rotate(
    couple: Annotated[str | None, typer.Argument(help="The couple's id.")] = None,
    partner: Annotated[str | None, typer.Argument(help="The partner's name.")] = None,
    every: Annotated[
        bool,
        typer.Option(
            "--all", help="Every partner's URL at once: after a leak of the secret or database."
        ),
    ] = False,
) -> None:
    """A new feed URL for the partner (or for every partner); the old one answers 404."""
    if every and (couple is not None or partner is not None):
        _fail("give either --all or COUPLE PARTNER, not both")
    if not every and (couple is None or partner is None):
        _fail("give COUPLE PARTNER (one partner's URL) or --all (every partner's)")
    settings, _ = running.local_settings(settings_or_exit())
    redis, _ = _redis(settings, required=True)
    publisher = _publisher(settings, redis)
    if every:
        from service.config import load_directory  # noqa: PLC0415

        configured = sorted(load_directory(settings.config_dir).couples)
        rotated = publisher.rotate_all(configured)
        typer.echo(
            f"rotated {rotated} feed URLs: every old one answers 404 now. "
            "`hearth feed urls` shows the new ones."
        )
        return
    assert couple is not None
    assert partner is not None
    try:
        url = publisher.rotate(couple, partner.lower())
    except KeyError:
        _fail(f"no couple {couple!r} with a partner {partner!r} in {settings.config_dir}")
    typer.echo(f"{couple} {url.name}: the old URL no longer works. New:")
    _echo_urls(url)


@feed_app.command("export")
def export(
    what: Annotated[str, typer.Argument(help="A couple file, or a couple's id.")],
    partner: Annotated[str | None, typer.Option(help="Whose feed (default: the first).")] = None,
) -> None:
    """Print the exact bytes a feed URL serves (for a file: its feed with no replies applied)."""
    path = Path(what)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        sys.stdout.buffer.write(_from_file(path, partner))
        return
    settings = settings_or_exit()
    redis, _ = _redis(settings, required=True)
    publisher = _publisher(settings, redis)
    from service.config import load_directory  # noqa: PLC0415

    found = load_directory(settings.config_dir).couples.get(what)
    if found is None:
        _fail(f"{what!r} is neither a couple file nor a couple in {settings.config_dir}")
    key = _partner_key(found.partners, partner)
    body = publisher.served(what, key)
    if body is None:
        publisher.publish(what)
        body = publisher.served(what, key)
    if body is None:
        _fail(f"the feed of {what}/{key} is not published")
    sys.stdout.buffer.write(body)


def _echo_urls(url: FeedUrl) -> None:
    # Labelled by the scheme the URL really has: http on a local run, https behind a proxy.
    for label, value in ((url.scheme, url.url), ("webcal", url.webcal), ("google", url.google)):
        typer.echo(f"  {label + ':':<7} {value}")
    if url.too_long_for_google:
        from service.feeds.publisher import GOOGLE_URL_LIMIT  # noqa: PLC0415

        typer.echo(
            f"warning: the https URL is over {GOOGLE_URL_LIMIT} characters, more than Google "
            "Calendar's From URL field takes: shorten HEARTH_PUBLIC_URL",
            err=True,
        )


def _from_file(path: Path, partner: str | None) -> bytes:
    from service.config import load_couple_file  # noqa: PLC0415
    from service.domain.feed_horizons import FEED_LIMITS  # noqa: PLC0415
    from service.feeds.render import feed_occurrences, published_feed  # noqa: PLC0415
    from service.system_clock import SystemClock  # noqa: PLC0415

    try:
        couple = load_couple_file(path)
    except CoupleFileInvalid as e:
        _fail(str(e))
    except OSError as e:
        _fail(f"cannot read {path}: {e}")
    person = couple.partner(_partner_key(couple.partners, partner))
    now = SystemClock().now()
    found = feed_occurrences(couple, person, *FEED_LIMITS.window(now))
    return published_feed(couple, person, found, now=now).body


def _partner_key(partners: Sequence[Partner], wanted: str | None) -> str:
    keys = [p.key for p in partners]
    if wanted is None:
        return str(keys[0])
    if wanted.lower() not in keys:
        _fail(f"no partner {wanted!r} (partners: {', '.join(keys)})")
    return wanted.lower()


def _redis(settings: Settings, *, required: bool) -> tuple[Redis, bool]:
    """Hearth's Redis and whether it answers (``required``: exit when it does not)."""
    from redis import Redis  # noqa: PLC0415
    from redis.exceptions import RedisError  # noqa: PLC0415

    from service.embedded_redis import EmbeddedRedis  # noqa: PLC0415

    url = settings.redis_url or EmbeddedRedis(settings.data_dir.resolve()).url
    client: Redis = Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
    try:
        client.ping()
    except RedisError:
        if required:
            _fail(f"no Hearth is running on {settings.data_dir}: start `hearth run` first")
        return client, False
    return client, True


def _publisher(settings: Settings, redis: Redis) -> FeedPublisher:
    from service.runtime import Runtime  # noqa: PLC0415
    from service.storage import StorageError, migrate  # noqa: PLC0415

    try:
        migrate(settings.log_url)
    except (StorageError, HearthError) as e:
        _fail(str(e))
    return Runtime(settings, redis=redis).feed_publisher()


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
