"""``hearth dashboard urls | rotate``: each partner's dashboard URL, from the shell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service import running
from service.cli.serve import settings_or_exit
from service.domain.errors import HearthError

if TYPE_CHECKING:
    from datetime import datetime

    from service.dashboard import DashboardLinks
    from service.settings import Settings

__all__ = ["dashboard_app"]

dashboard_app = typer.Typer(
    name="dashboard", help="Each partner's dashboard URL (/c/<token>) and its rotation.",
    no_args_is_help=True,
)  # fmt: skip


@dashboard_app.command("urls")
def urls(
    couple: Annotated[str | None, typer.Argument(help="One couple's id (default: all).")] = None,
) -> None:
    """Each partner's dashboard URL (made on first use); anyone with it sees the page."""
    settings, _ = running.local_settings(settings_or_exit())
    from service.config import load_directory  # noqa: PLC0415

    couples = load_directory(settings.config_dir).couples
    wanted = sorted(couples)
    if couple is not None:
        if couple not in couples:
            _fail(f"no couple {couple!r} in {settings.config_dir} (couples: {', '.join(wanted)})")
        wanted = [couple]
    links, now = _links(settings)
    for couple_id in wanted:
        partners = couples[couple_id].partners
        made = links.urls(couple_id, [p.key for p in partners], now)
        for partner, url in zip(partners, made, strict=True):
            typer.echo(f"{couple_id} {partner.name}: {url.url}")


@dashboard_app.command("rotate")
def rotate(
    couple: Annotated[str, typer.Argument(help="The couple's id.")],
    partner: Annotated[str, typer.Argument(help="The partner's name.")],
) -> None:
    """A new dashboard URL for the partner; the old one answers 404 from now on."""
    settings, _ = running.local_settings(settings_or_exit())
    from service.config import load_directory  # noqa: PLC0415

    found = load_directory(settings.config_dir).couples.get(couple)
    try:
        if found is None:
            raise KeyError(couple)
        person = found.partner(partner)
    except KeyError:
        _fail(f"no couple {couple!r} with a partner {partner!r} in {settings.config_dir}")
    links, now = _links(settings)
    url = links.rotate(couple, person.key, now)
    typer.echo(f"{couple} {person.name}: the old URL no longer works. New:")
    typer.echo(f"  {url.url}")


def _links(settings: Settings) -> tuple[DashboardLinks, datetime]:
    from service.runtime import Runtime  # noqa: PLC0415
    from service.storage import StorageError, migrate  # noqa: PLC0415

    try:
        migrate(settings.log_url)
    except (StorageError, HearthError) as e:
        _fail(str(e))
    runtime = Runtime(settings)
    return runtime.dashboard_links(), runtime.clock.now()


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)
