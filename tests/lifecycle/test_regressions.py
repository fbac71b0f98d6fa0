"""Bugs the lifecycle model (test_lifecycle_model.py) found, each minimised to a plain test.

Each test names what went wrong; its docstring gives the sequence the state machine found
and what it came down to. A test marked ``xfail(strict=True)`` documents a finding that
needs a design decision: the model tolerates it (``ALLOWANCES`` there) until it is decided.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service.domain.clock import ManualClock
from service.domain.couples import Couple
from service.domain.sends import planned_sends
from service.senders import ConsoleSender
from service.sending import Outcome, SendPath, SendRequest
from service.storage import PartnerStates, Prompt, PromptLog, make_engine, migrate
from tests.domain.builders import couple

LEASE = timedelta(minutes=2)


@dataclass
class Couples:
    by_id: dict[str, Couple] = field(default_factory=dict)

    def get(self, couple_id: str) -> Couple | None:
        return self.by_id.get(couple_id)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    url = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    yield engine
    engine.dispose()


def _outbox(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_a_redelivery_at_the_very_end_of_the_lease_is_not_told_to_retry_at_once(
    engine: Engine, tmp_path: Path
) -> None:
    """A worker claimed a send at T and died. Its message came back at T + lease exactly
    (the model's finale steps whole minutes, the lease is 2): the claim was not taken over
    (only a claim *older* than the lease was), and the busy answer asked to retry at
    T + lease, which is now. The actor re-enqueued it with no delay, busy again, and so on
    until the wall clock moved past T + lease: a spin (the model's frozen clock never moves,
    so its queue never drained)."""
    c = couple({"kind": "check_in"})
    send = planned_sends(c, datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 2, tzinfo=UTC))[0]
    clock = ManualClock(send.at)
    prompts = PromptLog(engine, lease=LEASE)
    outbox = tmp_path / "outbox.jsonl"
    path = SendPath(Couples({c.id: c}), prompts, PartnerStates(engine),
                    ConsoleSender(outbox, io.StringIO()), clock)  # fmt: skip
    assert prompts.claim(Prompt.from_planned(send), clock.now())  # the worker that died
    clock.advance(LEASE)
    result = path.handle(SendRequest(send.id, send.due))
    assert result.outcome is not Outcome.BUSY or (
        result.retry_at is not None and result.retry_at > clock.now()
    ), f"busy, and told to retry at {result.retry_at}: now"
    assert result.retry_at is not None
    clock.set(result.retry_at)
    assert path.handle(SendRequest(send.id, send.due)).outcome is Outcome.SENT
    assert [line["event_id"] for line in _outbox(outbox)] == [send.event_id]
