"""``hearth reply --from PHONE "DONE"``: text Hearth as a partner would, through the webhook.

It posts the form Twilio would post, signed as Twilio would sign it (with the auth token, or
the data dir's development token in console mode), to the running service; then, in console
mode, it waits for Hearth's answer in the outbox and prints it. So the whole loop, prompt →
reply → confirmation, can be watched in one terminal.
"""

from __future__ import annotations

import json
import secrets
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Annotated
from urllib.parse import urlencode

import typer
from twilio.request_validator import (  # type: ignore[import-untyped,unused-ignore]
    RequestValidator,
)

from service import running
from service.cli.serve import settings_or_exit
from service.inbound import webhook_token
from service.webhooks import inbound_url

if TYPE_CHECKING:
    from pathlib import Path

    from service.settings import Settings

__all__ = ["post_reply", "reply"]


def post_reply(
    settings: Settings, phone: str, body: str, *, url: str | None = None, sid: str | None = None
) -> tuple[str, int, str]:
    """POST a signed inbound-SMS webhook; returns (MessageSid, HTTP status, response body)."""
    sid = sid or "SM" + secrets.token_hex(16)
    params = {
        "MessageSid": sid,
        "SmsSid": sid,
        "AccountSid": settings.twilio_account_sid or "AC" + "0" * 32,
        "From": phone,
        "To": settings.twilio_from or "",
        "Body": body,
        "NumMedia": "0",
    }
    signed_url = inbound_url(settings.public_url)
    signature = RequestValidator(webhook_token(settings)).compute_signature(signed_url, params)
    target = inbound_url(url) if url else signed_url
    request = urllib.request.Request(
        target,
        data=urlencode(params).encode(),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": signature,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return sid, response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return sid, e.code, e.read().decode("utf-8", "replace")


def reply(
    text: Annotated[str, typer.Argument(help='What the partner texts: "DONE", "SNOOZE 1h".')],
    phone: Annotated[str, typer.Option("--from", help="The partner's number, E.164.")],
    url: Annotated[
        str | None,
        typer.Option(
            help="Where the service listens (default: the running `hearth run`'s address, "
            "else HEARTH_PUBLIC_URL)."
        ),
    ] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for Hearth's answer.")] = 10.0,
) -> None:
    """Text Hearth as a partner: a signed webhook to the running service, then its answer."""
    settings, here = running.local_settings(settings_or_exit())
    url = url or (here.web_url if here is not None else None)
    outbox = settings.outbox_path
    start = outbox.stat().st_size if outbox.exists() else 0
    try:
        sid, status, body = post_reply(settings, phone, text, url=url)
    except (urllib.error.URLError, OSError) as e:
        typer.echo(f"error: cannot reach Hearth at {url or settings.public_url}: {e}", err=True)
        typer.echo("is it running? start it with ./scripts/run", err=True)
        raise typer.Exit(1) from None
    if status != 200:
        typer.echo(f"error: the webhook answered {status}: {body.strip()}", err=True)
        raise typer.Exit(1)
    typer.echo(f"sent {sid} from {phone}")
    if settings.twilio_enabled or wait <= 0:
        return
    answer = _wait_for_answer(outbox, start, f"reply/{sid}", wait)
    if answer is None:
        typer.echo(f"no answer in the outbox after {wait:g} s (is a worker running?)")
    else:
        # Keyword answers (STOP, HELP) name Hearth themselves, as carriers require.
        typer.echo(answer if answer.startswith("Hearth: ") else f"Hearth: {answer}")


def _wait_for_answer(outbox: Path, offset: int, event_id: str, wait: float) -> str | None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if outbox.exists():
            with outbox.open("rb") as f:
                f.seek(offset)
                for line in f.read().splitlines():
                    try:
                        record = json.loads(line)
                    except ValueError:
                        continue
                    if record.get("event_id") == event_id:
                        return str(record.get("body", ""))
        time.sleep(0.1)
    return None
