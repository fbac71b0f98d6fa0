"""``hearth``: validate couple files, preview their occurrences and texts, print the schema."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from service.cli import serve
from service.cli.backups import backup, restore
from service.cli.dashboard import dashboard_app
from service.cli.feed import feed_app
from service.cli.privacy import export, forget, rotate_key, secret_key
from service.cli.reply import reply
from service.cli.status import status
from service.cli.twilio import twilio_app
from service.config import load_couple_file
from service.config.loading import load_directory
from service.domain.couples import Couple, couple_json_schema
from service.domain.errors import CoupleFileInvalid, HearthError, WhenInvalid
from service.domain.occurrences import Occurrence, occurrences
from service.domain.segments import SEGMENT_WARNING, normalise_body
from service.domain.sends import PlannedSend, long_texts, planned_sends
from service.settings import SettingsInvalid
from service.system_clock import SystemClock

__all__ = ["app", "main"]

app = typer.Typer(
    name="hearth",
    help="Hearth keeps a couple's relationship rituals going.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def validate(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(help="Couple files or directories; default: the config directory."),
    ] = None,
) -> None:
    """Check couple files: OK <file>, or each error as <file>:<line>:<col>: <field>: <message>.

    A valid file's texts that need more than two SMS segments each get a warning line
    (the exit status stays 0).
    """
    targets = paths or [serve.settings_or_exit().config_dir]
    bad = False
    for target in targets:
        if target.is_dir():
            loaded = load_directory(target)
            for couple_id, path in sorted(loaded.files.items(), key=lambda item: item[1]):
                typer.echo(f"OK {path}")
                _warn_long_texts(path, loaded.couples[couple_id])
            for failure in loaded.failures:
                bad = True
                for issue in failure.issues:
                    typer.echo(str(issue))
            continue
        try:
            couple = load_couple_file(target)
        except CoupleFileInvalid as e:
            bad = True
            for issue in e.issues:
                typer.echo(str(issue))
        else:
            typer.echo(f"OK {target}")
            _warn_long_texts(target, couple)
    if bad:
        raise typer.Exit(1)


@app.command()
def preview(
    path: Annotated[Path, typer.Argument(help="A couple file.")],
    from_: Annotated[
        str | None,
        typer.Option("--from", help="RFC 3339 instant, or a date (00:00 UTC). Default: now."),
    ] = None,
    to: Annotated[
        str | None,
        typer.Option("--to", help="RFC 3339 instant, or a date (00:00 UTC). Default: 7 days on."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="A JSON array, sorted by start.")] = False,
    prompts: Annotated[
        bool, typer.Option("--prompts", help="The SMS sends the occurrences imply, instead.")
    ] = False,
) -> None:
    """Show a couple file's occurrences (or its SMS sends) in a window."""
    try:
        start = _when(from_, "--from") if from_ else SystemClock().now()
        end = _when(to, "--to") if to else start + timedelta(days=7)
    except WhenInvalid as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if end <= start:
        typer.echo(
            f"error: --to ({end.isoformat()}) must be after --from ({start.isoformat()})", err=True
        )
        raise typer.Exit(2)
    try:
        couple = load_couple_file(path)
    except CoupleFileInvalid as e:
        for issue in e.issues:
            typer.echo(str(issue), err=True)
        raise typer.Exit(1) from None
    if prompts:
        sends = planned_sends(couple, start, end)
        if as_json:
            typer.echo(json.dumps([_send_json(s) for s in sends], indent=2, ensure_ascii=False))
        else:
            for s in sends:
                typer.echo(f"{_stamp(s.at)}  {s.partner:<10} {s.purpose!s:<12} {s.event_id}")
                typer.echo(f"    {s.body}")
        return
    found = occurrences(couple, start, end)
    if as_json:
        typer.echo(json.dumps([_occurrence_json(o) for o in found], indent=2, ensure_ascii=False))
        return
    for o in found:
        length = _length(o.end - o.start)
        extras = "".join(
            [" calendar" if o.calendar else "", f" planner={o.planner}" if o.planner else ""]
        )
        typer.echo(
            f"{_stamp(o.start)}  {o.timezone:<20} {o.ritual:<16} {length:>6}  {o.id}{extras}"
        )
    if not found:
        typer.echo(f"no occurrences between {start.isoformat()} and {end.isoformat()}")


@app.command()
def migrate() -> None:
    """Bring the log database (DATABASE_URL, or SQLite in the data dir) to the latest schema."""
    # Imported here: SQLAlchemy and Alembic add 0.4 s to every other command's start-up.
    from service.storage import StorageError, head_revision, redact_url  # noqa: PLC0415
    from service.storage import migrate as upgrade  # noqa: PLC0415

    settings = serve.settings_or_exit()
    try:
        upgrade(settings.log_url)
    except StorageError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"log database at revision {head_revision()}: {redact_url(settings.log_url)}")


@app.command()
def schema() -> None:
    """Print the JSON Schema of a couple file."""
    typer.echo(json.dumps(couple_json_schema(), indent=2, ensure_ascii=False))


for _command in (
    serve.run,
    serve.scheduler,
    serve.worker,
    serve.web,
    serve.fire,
    reply,
    status,
    export,
    forget,
    rotate_key,
    secret_key,
    backup,
    restore,
):
    app.command()(_command)
app.add_typer(feed_app)
app.add_typer(dashboard_app)
app.add_typer(twilio_app)


def main() -> None:
    """The ``hearth`` command: a failure we can name is one ``error:`` line, never a traceback.

    Exit status 2 for bad settings (the environment is at fault), 1 for anything else.
    """
    try:
        app()
    except SettingsInvalid as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except HearthError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(1)


def _warn_long_texts(path: Path, couple: Couple) -> None:
    for long in long_texts(couple):
        text, cost = long.text, long.cost
        why = (
            f"UCS-2: {json.dumps(cost.culprit, ensure_ascii=False)} in the text"
            if cost.culprit is not None
            else f"GSM-7, {len(normalise_body(text.body))} characters"
        )
        typer.echo(
            f"warning: {path}: {text.ritual} {text.label} to {text.partner}: "
            f"{cost.segments} segments ({why}); keep texts within {SEGMENT_WARNING}"
        )


def _when(text: str, option: str) -> datetime:
    raw = text.strip()
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            return datetime(day.year, day.month, day.day, tzinfo=UTC)
        instant = datetime.fromisoformat(raw)
    except ValueError:
        raise WhenInvalid(
            f"{option} {text!r} is neither an RFC 3339 instant (2026-11-25T21:00:00+01:00) "
            "nor a date (2026-11-25)"
        ) from None
    if instant.tzinfo is None:
        raise WhenInvalid(f"{option} {text!r} has no UTC offset; add one, like +01:00 or Z")
    return instant


def _stamp(at: datetime) -> str:
    return f"{at:%a %Y-%m-%d %H:%M %z}"


def _length(span: timedelta) -> str:
    minutes = int(span.total_seconds()) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}" if hours else f"{minutes}m"


def _occurrence_json(o: Occurrence) -> dict[str, object]:
    return {
        "occurrence_id": o.id,
        "couple": o.couple,
        "ritual": o.ritual,
        "kind": o.kind.value,
        "start": o.start.isoformat(),
        "end": o.end.isoformat(),
        "timezone": o.timezone,
        "calendar": o.calendar,
        "local_start": o.wall.isoformat(timespec="minutes"),
        "partner": o.partner,
        "planner": o.planner,
    }


def _send_json(s: PlannedSend) -> dict[str, object]:
    return {
        "event_id": s.event_id,
        "occurrence_id": s.occurrence_id,
        "couple": s.couple,
        "ritual": s.ritual,
        "partner": s.partner,
        "purpose": str(s.purpose),
        "at": s.at.isoformat(),
        "due": s.due.isoformat(),
        "body": s.body,
    }
