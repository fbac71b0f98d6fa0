"""The console sender: without Twilio credentials, texts are printed and kept in an outbox.

The outbox is a JSON-lines file, one object per text (``event_id``, ``occurrence_id``,
``couple``, ``ritual``, ``partner``, ``to``, ``body``, ``sent_at``, ``id``), appended with one
``write`` on a file opened in append mode, so concurrent workers never interleave lines.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from service.senders.base import Outgoing, RetryableDeliveryError

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["ConsoleSender"]


class ConsoleSender:
    """Prints a readable line per text and appends it to the outbox file."""

    def __init__(self, outbox: Path, stream: TextIO | None = None) -> None:
        self._outbox = outbox
        self._stream = stream if stream is not None else sys.stdout

    def send(self, text: Outgoing, now: datetime) -> str:
        provider_id = f"console-{uuid.uuid4().hex}"
        record = asdict(text) | {"sent_at": now.isoformat(), "id": provider_id}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            self._outbox.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._outbox, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode("utf-8"))
            finally:
                os.close(fd)
        except OSError as e:
            raise RetryableDeliveryError(f"cannot append to the outbox {self._outbox}: {e}") from e
        self._stream.write(f"[sms to {text.partner} of {text.couple}] {text.body}\n")
        self._stream.flush()
        return provider_id
