"""``hearth status [COUPLE]``: per partner, whether texts reach them, and their last sends.

For each partner: receiving, opted out, paused until when, or unreachable (the carrier
refused their current number, with the error and when); the last delivery problem; and
the last few sends with Hearth's state and the carrier's delivery status. Read from the
log database only: it works whether or not Hearth is running.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import typer

from service import running
from service.cli.serve import settings_or_exit
from service.domain.delivery import policy_for

if TYPE_CHECKING:
    from service.domain.couples import Couple, Partner
    from service.storage import PartnerStates, PromptLog, PromptRecord

__all__ = ["status"]

RECENT = 5  # sends shown per partner
PROBLEMS_LOOKED_AT = 50  # how far back the last delivery problem is looked for


def status(
    couple: Annotated[str | None, typer.Argument(help="One couple's id (default: all).")] = None,
    sends: Annotated[int, typer.Option(help="How many recent sends to show per partner.")] = RECENT,
) -> None:
    """Per partner: receiving, opted out, paused or unreachable, and their last sends."""
    settings, _ = running.local_settings(settings_or_exit())
    from service.config import load_directory  # noqa: PLC0415 - only this command needs it

    loaded = load_directory(settings.config_dir)
    couples = loaded.couples
    if couple is not None and couple not in couples:
        known = ", ".join(sorted(couples)) or "none"
        typer.echo(f"error: no couple {couple!r} in {settings.config_dir} (couples: {known})",
                   err=True)  # fmt: skip
        raise typer.Exit(1)
    from service.runtime import Runtime  # noqa: PLC0415  (a second of imports: not for --help)

    runtime = Runtime(settings)
    try:
        now = runtime.clock.now()
        for couple_id in [couple] if couple is not None else sorted(couples):
            _couple(couples[couple_id], runtime.prompts, runtime.partners, sends, now)
    finally:
        runtime.close()


def _couple(couple: Couple, prompts: PromptLog, partners: PartnerStates, shown: int,
            now: datetime) -> None:  # fmt: skip
    typer.echo(couple.id)
    for partner in couple.partners:
        typer.echo(f"  {partner.key}: {_standing(couple.id, partner, partners, now)}")
        recent = prompts.recent(couple.id, partner.key, limit=max(shown, PROBLEMS_LOOKED_AT))
        problem = next((r for r in recent if _problem(r)), None)
        if problem is not None:
            typer.echo(f"    last problem: {_line(problem)} — {_problem(problem)}")
        for record in recent[:shown]:
            typer.echo(f"    {_line(record)}")
        if not recent:
            typer.echo("    no sends yet")


def _standing(couple: str, partner: Partner, partners: PartnerStates, now: datetime) -> str:
    state = partners.get(couple, partner.key)
    mark = partners.unreachable(state, partner.phone)
    if state.opted_out:
        return "opted out (texted STOP; START resumes)"
    if mark is not None:
        meaning = policy_for(mark.code).meaning
        return (f"unreachable since {_stamp(mark.at)} (error {mark.code}: {meaning}); "
                "texts resume when the couple file gives another number")  # fmt: skip
    if state.paused_at(now):
        assert state.paused_until is not None
        return f"paused until {_stamp(state.paused_until)}"
    return "receiving"


def _line(record: PromptRecord) -> str:
    delivery = record.delivery_status.value if record.delivery_status else "-"
    if record.delivery_code is not None:
        delivery += f" ({record.delivery_code})"
    segments = f"{record.segments} seg" if record.segments else ""
    return (f"{_stamp(record.due_at)}  {record.ritual or '-':<14} {record.purpose:<22} "
            f"{record.state.value:<8} {delivery:<18} {segments}").rstrip()  # fmt: skip


def _problem(record: PromptRecord) -> str:
    """What went wrong with ``record``'s delivery, or "" when nothing did."""
    if record.delivery_status is not None and record.delivery_status.is_failure:
        return policy_for(record.delivery_code).meaning
    if record.state.value in ("failed", "unknown"):
        return record.error or record.state.value
    return ""


def _stamp(instant: datetime) -> str:
    return f"{instant.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
