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

from service.senders.base import Lookup, Outgoing, RetryableDeliveryError, SentBefore

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
        fields = asdict(text)
        # A provider's queueing limit and a lookup's key: nothing for the outbox to say.
        del fields["deadline"], fields["sent_digest"]
        record = fields | {"sent_at": now.isoformat(), "id": provider_id}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        try:
            self._outbox.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
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

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        """The outbox is the provider's record: a line for the event means it went out.

        Read whole, since it is asked only when a claim is taken over from a dead worker.
        """
        needle = json.dumps(text.event_id, ensure_ascii=False)
        try:
            with self._outbox.open(encoding="utf-8") as lines:
                for line in lines:
                    if needle not in line or not line.endswith("\n"):
                        continue
                    record = json.loads(line)
                    if record.get("event_id") == text.event_id:
                        return SentBefore(str(record["id"]))
        except FileNotFoundError:
            return Lookup.NOT_SENT
        except OSError as e:
            raise RetryableDeliveryError(f"cannot read the outbox {self._outbox}: {e}") from e
        return Lookup.NOT_SENT
