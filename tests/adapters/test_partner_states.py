"""Partner states (opt-out, pause) on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from service.storage import PartnerState, PartnerStates, make_engine, migrate
from tests.databases import BACKENDS, database

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_unknown_partner_receives_texts(engine: Engine) -> None:
    state = PartnerStates(engine).get("alex-sam", "alex")
    assert state == PartnerState()
    assert not state.opted_out
    assert not state.paused_at(NOW)


def test_stop_then_start_is_recorded_per_partner(engine: Engine) -> None:
    states = PartnerStates(engine)
    states.set_opted_out("alex-sam", "alex", True, NOW)
    assert states.get("alex-sam", "alex").opted_out
    assert not states.get("alex-sam", "sam").opted_out
    assert not states.get("other-couple", "alex").opted_out
    states.set_opted_out("alex-sam", "alex", False, NOW + timedelta(hours=1))
    assert not states.get("alex-sam", "alex").opted_out


def test_pause_holds_until_its_end_and_keeps_the_opt_out(engine: Engine) -> None:
    states = PartnerStates(engine)
    states.set_opted_out("alex-sam", "sam", True, NOW)
    states.pause("alex-sam", "sam", NOW + timedelta(days=3), NOW)
    state = states.get("alex-sam", "sam")
    assert state.opted_out  # a pause does not undo a STOP
    assert state.paused_at(NOW + timedelta(days=2, hours=23))
    assert not state.paused_at(NOW + timedelta(days=3))
    assert state.paused_until == NOW + timedelta(days=3)
    states.pause("alex-sam", "sam", None, NOW)
    assert not states.get("alex-sam", "sam").paused_at(NOW)


def test_pause_refuses_naive_datetimes(engine: Engine) -> None:
    with pytest.raises(ValueError, match="aware"):
        PartnerStates(engine).pause("c", "p", datetime(2026, 1, 1), NOW)
