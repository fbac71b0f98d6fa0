"""The send path on a real prompt log (SQLite and PostgreSQL) and the real console sender."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.domain.clock import ManualClock
from service.domain.couples import Couple
from service.domain.deadlines import Grace
from service.domain.sends import PlannedSend, planned_sends
from service.senders import (
    ConsoleSender,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    RetryableDeliveryError,
    SentBefore,
)
from service.sending import Outcome, SendPath, SendRequest
from service.storage import (
    PartnerStates,
    Prompt,
    PromptLog,
    PromptState,
    StorageError,
    make_engine,
    migrate,
)
from tests.databases import BACKENDS, database
from tests.domain.builders import couple

ALEX_QUIET = {"name": "Alex", "phone": "+15550000001", "quiet_hours": "22:00-07:00"}
SAM = {"name": "Sam", "phone": "+15550000002"}


@dataclass
class Couples:
    by_id: dict[str, Couple] = field(default_factory=dict)

    def get(self, couple_id: str) -> Couple | None:
        return self.by_id.get(couple_id)


@dataclass
class World:
    path: SendPath
    prompts: PromptLog
    partners: PartnerStates
    clock: ManualClock
    couples: Couples
    outbox: Path

    def sent(self) -> list[dict[str, str]]:
        if not self.outbox.exists():
            return []
        return [json.loads(line) for line in self.outbox.read_text().splitlines()]


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with database(request.param, tmp_path) as url:
        migrate(url)
        engine = make_engine(url)
        clock = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
        couples = Couples()
        prompts, partners = PromptLog(engine), PartnerStates(engine)
        outbox = tmp_path / "outbox.jsonl"
        path = SendPath(couples, prompts, partners, ConsoleSender(outbox, io.StringIO()), clock)
        yield World(path, prompts, partners, clock, couples, outbox)
        engine.dispose()


def _sends_to(c: Couple, partner: str = "alex") -> list[PlannedSend]:
    start = datetime(2026, 6, 1, tzinfo=UTC)
    return [s for s in planned_sends(c, start, start + timedelta(days=3)) if s.partner == partner]


def _first_send(c: Couple, partner: str = "alex") -> PlannedSend:
    return _sends_to(c, partner)[0]


def _request(send: PlannedSend) -> SendRequest:
    return SendRequest(send.id, send.due)


def test_send_goes_out_once_however_often_it_is_delivered(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    send = _first_send(c)
    world.clock.set(send.at)
    first = world.path.handle(_request(send))
    again = world.path.handle(_request(send))
    assert first.outcome is Outcome.SENT
    assert again.outcome is Outcome.DONE_BEFORE
    (line,) = world.sent()
    assert line["event_id"] == send.event_id
    assert line["to"] == "+15550000001"
    assert line["body"] == send.body
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.state is PromptState.SENT
    assert record.provider_id == first.provider_id


def test_concurrent_deliveries_of_one_event_send_once(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    send = _first_send(c)
    world.clock.set(send.at)
    outcomes: list[Outcome] = []

    def deliver() -> None:
        outcomes.append(world.path.handle(_request(send)).outcome)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert outcomes.count(Outcome.SENT) == 1
    assert len(world.sent()) == 1


def test_opted_out_partner_gets_nothing_until_start(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    alex = _sends_to(c)
    world.partners.set_opted_out(c.id, "alex", True, world.clock.now())
    world.clock.set(alex[0].at)
    assert world.path.handle(_request(alex[0])).outcome is Outcome.MISSED
    record = world.prompts.get(alex[0].event_id)
    assert record is not None
    assert record.state is PromptState.MISSED
    world.partners.set_opted_out(c.id, "alex", False, world.clock.now())
    world.clock.set(alex[1].at)
    assert world.path.handle(_request(alex[1])).outcome is Outcome.SENT
    assert [line["event_id"] for line in world.sent()] == [alex[1].event_id]


def test_paused_partner_is_skipped_until_the_pause_ends(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    alex = _sends_to(c)
    world.partners.pause(c.id, "alex", alex[0].at + timedelta(hours=1), world.clock.now())
    world.clock.set(alex[0].at)
    assert world.path.handle(_request(alex[0])).outcome is Outcome.MISSED
    world.clock.set(alex[1].at)
    assert world.path.handle(_request(alex[1])).outcome is Outcome.SENT


def test_send_arriving_in_quiet_hours_is_held_to_their_end(world: World) -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 20:00"}, partners=[ALEX_QUIET, SAM])
    world.couples.by_id[c.id] = c
    sender = ConsoleSender(world.outbox, io.StringIO())
    # A grace long enough for the hold: a prompt may go out until 08:00 the next day.
    path = SendPath(world.couples, world.prompts, world.partners, sender, world.clock,
                    grace=Grace(prompt=timedelta(hours=12)))  # fmt: skip
    send = _first_send(c)
    # A late catch-up: the 20:00 EDT prompt is handled at 23:30 EDT, inside 22:00-07:00.
    world.clock.set(send.at + timedelta(hours=3, minutes=30))
    held = path.handle(_request(send))
    assert held.outcome is Outcome.HELD
    assert held.retry_at is not None
    assert held.retry_at.astimezone(c.partner_zone(c.partners[0])).strftime("%H:%M") == "07:00"
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.state, record.claimed_at, record.retry_at) == (
        PromptState.PENDING, None, held.retry_at,
    )  # fmt: skip
    assert world.sent() == []
    world.clock.set(held.retry_at)
    assert path.handle(_request(send)).outcome is Outcome.SENT


def test_a_hold_that_would_end_past_the_deadline_is_recorded_missed(world: World) -> None:
    c = couple({"kind": "check_in", "schedule": "every day at 20:00"}, partners=[ALEX_QUIET, SAM])
    world.couples.by_id[c.id] = c
    send = _first_send(c)
    # Handled at 22:00 EDT, its deadline: in quiet hours until 07:00, long past it.
    world.clock.set(send.at + timedelta(hours=2))
    result = world.path.handle(_request(send))
    assert result.outcome is Outcome.MISSED
    assert "quiet hours last past its deadline" in result.detail
    assert world.sent() == []


def test_a_send_handled_past_its_deadline_is_missed_never_sent(world: World) -> None:
    c = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["3h"]})
    world.couples.by_id[c.id] = c
    reminder = next(s for s in _sends_to(c) if str(s.purpose) == "reminder-3h")
    prompt = next(s for s in _sends_to(c) if str(s.purpose) == "prompt")
    # The message waited in the queue: the reminder comes up after the date began, the
    # prompt after its 2-hour grace.
    world.clock.set(reminder.starts + timedelta(minutes=1))
    late = world.path.handle(_request(reminder))
    assert late.outcome is Outcome.MISSED
    assert "past its deadline" in late.detail
    world.clock.set(prompt.at + timedelta(hours=2, seconds=1))
    assert world.path.handle(_request(prompt)).outcome is Outcome.MISSED
    assert world.sent() == []
    records = [world.prompts.get(s.event_id) for s in (reminder, prompt)]
    assert [r.state for r in records if r is not None] == [PromptState.MISSED] * 2


def test_send_the_config_no_longer_names_is_recorded_as_missed(world: World) -> None:
    before = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["3h"]})
    after = couple({"kind": "date_night", "schedule": "every day at 19:00", "remind": ["1h"]})
    world.couples.by_id[before.id] = after  # edited after the event was scheduled
    reminder = next(
        s for s in planned_sends(before, world.clock.now(), world.clock.now() + timedelta(days=1))
        if str(s.purpose) == "reminder-3h"
    )  # fmt: skip
    world.clock.set(reminder.at)
    result = world.path.handle(_request(reminder))
    assert result.outcome is Outcome.MISSED
    assert "no longer" in result.detail
    world.couples.by_id.clear()
    gone = world.path.handle(_request(_first_send(before, "sam")))
    assert gone.outcome is Outcome.MISSED


class FlakySender:
    """Refuses the first ``failures`` sends as the provider would, then accepts."""

    def __init__(self, error: Exception, failures: int = 1) -> None:
        self.error, self.failures, self.accepted = error, failures, 0

    def send(self, text: Outgoing, now: datetime) -> str:
        if self.failures:
            self.failures -= 1
            raise self.error
        self.accepted += 1
        return f"SM{self.accepted}"


def test_retryable_error_releases_the_claim_and_the_retry_sends(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    sender = FlakySender(RetryableDeliveryError("rate limited", 20429))
    path = SendPath(world.couples, world.prompts, world.partners, sender, world.clock)
    send = _first_send(c)
    world.clock.set(send.at)
    with pytest.raises(RetryableDeliveryError):
        path.handle(_request(send))
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.state is PromptState.PENDING
    assert path.handle(_request(send)).outcome is Outcome.SENT
    assert sender.accepted == 1


def test_carrier_opt_out_fails_the_send_and_stops_later_ones(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    sender = FlakySender(PermanentDeliveryError("unsubscribed", 21610, opted_out=True))
    path = SendPath(world.couples, world.prompts, world.partners, sender, world.clock)
    alex = _sends_to(c)
    world.clock.set(alex[0].at)
    assert path.handle(_request(alex[0])).outcome is Outcome.FAILED
    assert world.partners.get(c.id, "alex").opted_out
    world.clock.set(alex[1].at)
    assert path.handle(_request(alex[1])).outcome is Outcome.MISSED
    assert sender.accepted == 0


class _FlakyLog:
    """The prompt log with ``mark_sent`` failing as a database that went away would."""

    def __init__(self, log: PromptLog, failures: int) -> None:
        self._log, self.failures = log, failures
        self.lease = log.lease

    def mark_sent(
        self, event_id: str, provider_id: str | None, now: datetime, segments: int | None = None
    ) -> bool:
        if self.failures:
            self.failures -= 1
            raise StorageError("sqlite:///x", "database is locked")
        return self._log.mark_sent(event_id, provider_id, now, segments)

    def __getattr__(self, name: str) -> object:
        return getattr(self._log, name)


def test_a_failed_recording_is_retried_never_the_send(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    send = _first_send(c)
    world.clock.set(send.at)
    sender = ConsoleSender(world.outbox, io.StringIO())
    flaky = _FlakyLog(world.prompts, failures=2)
    path = SendPath(world.couples, flaky, world.partners, sender, world.clock,  # type: ignore[arg-type]
                    record_retries_s=(0, 0, 0))  # fmt: skip
    assert path.handle(_request(send)).outcome is Outcome.SENT
    assert [x["event_id"] for x in world.sent()] == [send.event_id]


def test_a_recording_that_keeps_failing_is_finished_without_a_second_text(world: World) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    alex, sam = _first_send(c, "alex"), _first_send(c, "sam")
    world.clock.set(alex.at)
    sender = ConsoleSender(world.outbox, io.StringIO())
    flaky = _FlakyLog(world.prompts, failures=4)
    path = SendPath(world.couples, flaky, world.partners, sender, world.clock,  # type: ignore[arg-type]
                    record_retries_s=(0,))  # fmt: skip
    # The database stays away: the text went out, its recording did not.
    for send in (alex, sam):
        with pytest.raises(StorageError):
            path.handle(_request(send))
    assert [x["event_id"] for x in world.sent()] == [alex.event_id, sam.event_id]
    # The message's retry in the same worker records the provider id it kept.
    retried = path.handle(_request(alex))
    assert (retried.outcome, retried.detail) == (Outcome.SENT, "recorded on a retry")
    # That worker died; another takes Sam's claim over after the lease: the outbox says it
    # went out, so it is recorded with that text's id, not sent again.
    world.clock.advance(world.prompts.lease + timedelta(seconds=1))
    other = SendPath(world.couples, world.prompts, world.partners, sender, world.clock)
    result = other.handle(_request(sam))
    assert (result.outcome, result.detail) == (Outcome.SENT, "sent by an earlier attempt")
    assert [x["event_id"] for x in world.sent()] == [alex.event_id, sam.event_id]
    record = world.prompts.get(sam.event_id)
    assert record is not None
    assert record.state is PromptState.SENT
    assert record.provider_id == world.sent()[1]["id"]


def test_a_take_over_with_a_provider_that_cannot_be_asked_is_unknown_not_resent(
    world: World,
) -> None:
    c = couple({"kind": "check_in"})
    world.couples.by_id[c.id] = c
    send = _first_send(c)
    world.clock.set(send.at)
    world.prompts.claim(Prompt.from_planned(send), world.clock.now())  # then the worker died

    class Unaskable(FlakySender):
        def lookup(
            self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
        ) -> SentBefore | Lookup:
            return Lookup.UNKNOWN

    sender = Unaskable(RetryableDeliveryError("never", 1), failures=0)
    path = SendPath(world.couples, world.prompts, world.partners, sender, world.clock)
    world.clock.advance(world.prompts.lease + timedelta(seconds=1))
    assert path.handle(_request(send)).outcome is Outcome.UNKNOWN
    assert sender.accepted == 0
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.state is PromptState.UNKNOWN
    assert path.handle(_request(send)).outcome is Outcome.DONE_BEFORE


def test_a_worker_that_has_not_read_an_edit_yet_reads_it_before_refusing_a_send(
    world: World, tmp_path: Path
) -> None:
    from service.config.live import LiveConfig
    from service.runtime import RefreshingCouples
    from tests.couple_texts import VALID

    config = tmp_path / "couples"
    config.mkdir()
    (config / "a.yaml").write_text(VALID)
    couples = RefreshingCouples(LiveConfig(config), every_s=3600)  # it read the file once
    assert couples.get("a") is not None
    edited = VALID.replace("at 21:00", "at 20:00")
    (config / "a.yaml").write_text(edited + "\n")  # the scheduler planned from this one
    from service.config.loading import load_couple_text

    new = load_couple_text(edited, "a.yaml", default_id="a")
    send = _first_send(new)
    world.clock.set(send.at)
    sender = ConsoleSender(world.outbox, io.StringIO())
    path = SendPath(couples, world.prompts, world.partners, sender, world.clock)
    assert path.handle(_request(send)).outcome is Outcome.SENT


def test_a_send_whose_couple_file_cannot_be_read_waits_for_it_not_recorded_missed(
    world: World, tmp_path: Path
) -> None:
    from service.config.live import LiveConfig
    from service.config.loading import load_couple_text
    from service.runtime import RefreshingCouples
    from service.sending import CoupleUnreadable
    from tests.couple_texts import VALID

    config = tmp_path / "couples"
    config.mkdir()
    (config / "a.yaml").write_text("timezone: Europe/Berlin\npartners: [oops\n")
    # A worker started while the file is broken, with no shared good version to read.
    couples = RefreshingCouples(LiveConfig(config), every_s=3600)
    send = _first_send(load_couple_text(VALID, "a.yaml", default_id="a"))
    world.clock.set(send.at)
    sender = ConsoleSender(world.outbox, io.StringIO())
    path = SendPath(couples, world.prompts, world.partners, sender, world.clock)
    with pytest.raises(CoupleUnreadable):
        path.handle(_request(send))
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.state, record.claimed_at) == (PromptState.PENDING, None)
    (config / "a.yaml").write_text(VALID)  # mended: the retry sends it
    world.clock.advance(timedelta(minutes=1))
    assert path.handle(_request(send)).outcome is Outcome.SENT
    # Another worker, started while the file is broken again, and for longer than a prompt's
    # grace: recorded missed, saying why.
    other = _first_send(load_couple_text(VALID, "a.yaml", default_id="a"), "sam")
    (config / "a.yaml").write_text("timezone: Europe/Berlin\npartners: [oops, again\n")
    fresh = RefreshingCouples(LiveConfig(config), every_s=3600)
    path = SendPath(fresh, world.prompts, world.partners, sender, world.clock)
    world.clock.set(other.at + timedelta(hours=2, seconds=1))
    late = path.handle(_request(other))
    assert (late.outcome, late.detail) == (
        Outcome.MISSED,
        "the file of a could not be read in time",
    )
