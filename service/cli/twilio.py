"""``hearth twilio check [--fix]``: is Twilio wired to Hearth, and if not, what to change."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.serve import settings_or_exit

__all__ = ["twilio_app"]

twilio_app = typer.Typer(
    name="twilio", help="Check (and fix) how Twilio is wired to Hearth.", no_args_is_help=True
)


@twilio_app.command("check")
def check(
    fix: Annotated[
        bool,
        typer.Option(
            "--fix", help="Point the number's (or messaging service's) SMS webhook at Hearth."
        ),
    ] = False,
) -> None:
    """Ask Twilio about the account, TWILIO_FROM and its SMS webhook; say what to fix.

    Exit 0 when all is right (or was fixed), 1 when something needs fixing, 2 for missing
    or refused credentials.
    """
    settings = settings_or_exit()
    if not settings.twilio_enabled:
        typer.echo(
            "error: Twilio is not configured (Hearth uses the console sender): set "
            "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM",
            err=True,
        )
        raise typer.Exit(2)
    # Imported here: twilio.rest adds 0.2 s to every other command's start-up.
    from service.senders.twilio import twilio_client  # noqa: PLC0415
    from service.twilio_wiring import check_wiring  # noqa: PLC0415

    report = check_wiring(twilio_client(settings), settings, fix=fix)
    for finding in report.findings:
        typer.echo(str(finding))
    if report.needs_fixing:
        raise typer.Exit(1)
