"""Delivery receipts and the error-code policy on a real prompt log (SQLite and PostgreSQL),
through the real send path: what each code does to the send, the partner and the next text."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from service.deliveries import Receipt, Receipts
from service.domain.clock import ManualClock
from service.domain.couples import Couple
from service.domain.delivery import DeliveryStatus
from service.domain.events import SendId
from service.domain.sends import PlannedSend, planned_sends
from service.senders import (
    AmbiguousDeliveryError,
    Lookup,
    Outgoing,
    PermanentDeliveryError,
    SentBefore,
)
from service.sending import Outcome, SendPath, SendRequest
from service.storage import Claim, PartnerStates, Prompt, PromptLog, PromptState, make_engine
from service.storage import migrate as migrate_log
from tests.databases import BACKENDS, database
from tests.domain.builders import couple

ALEX = "+15550000001"


@dataclass
class Provider:
    """A provider whose answers a test scripts: each send takes the next ``failures`` item
    (an exception to raise, or None to accept), and ``lookup`` says what it holds."""

    failures: list[Exception | None] = field(default_factory=list)
    accepted: list[Outgoing] = field(default_factory=list)
    held: dict[str, str] = field(default_factory=dict)  # event id -> sid it holds
    lookups: int = 0
    lookup_unknown: bool = False

    def send(self, text: Outgoing, now: datetime) -> str:
        failure = self.failures.pop(0) if self.failures else None
        if isinstance(failure, AmbiguousDeliveryError):
            self.held[text.event_id] = f"SM{len(self.held):032x}"  # it took it, then timed out
        if failure is not None:
            raise failure
        sid = f"SM{len(self.accepted) + 100:032x}"
        self.accepted.append(text)
        return sid

    def lookup(
        self, text: Outgoing, since: datetime, exclude: frozenset[str] = frozenset()
    ) -> SentBefore | Lookup:
        self.lookups += 1
        if self.lookup_unknown:
            return Lookup.UNKNOWN
        sid = self.held.get(text.event_id)
        return SentBefore(sid) if sid else Lookup.NOT_SENT


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
    receipts: Receipts
    provider: Provider
    clock: ManualClock
    couples: Couples

    def receipt(
        self, send: str | PlannedSend, status: str, code: int | None = None, sid: str = ""
    ) -> Receipt:
        event_id = send if isinstance(send, str) else send.event_id
        record = self.prompts.get(event_id)
        assert record is not None
        form = {"MessageSid": sid or record.provider_id or "", "MessageStatus": status, "To": ALEX}
        if code is not None:
            form["ErrorCode"] = str(code)
        return Receipt.from_form(event_id, form)

    def handle(self, send: PlannedSend | SendId) -> Outcome:
        send_id = send.id if isinstance(send, PlannedSend) else send
        due = send.due if isinstance(send, PlannedSend) else self.clock.now()
        return self.path.handle(SendRequest(send_id, due)).outcome


@pytest.fixture(params=BACKENDS)
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    with database(request.param, tmp_path) as url:
        migrate_log(url)
        engine = make_engine(url)
        clock = ManualClock(datetime(2026, 6, 1, 12, tzinfo=UTC))
        couples = Couples()
        prompts = PromptLog(engine)
        partners = PartnerStates(engine, number_key=b"k" * 32)
        provider = Provider()
        path = SendPath(couples, prompts, partners, provider, clock)
        yield World(path, prompts, partners, Receipts(prompts, partners, None), provider, clock,
                    couples)  # fmt: skip
        engine.dispose()


def _sends(world: World, c: Couple, partner: str = "alex") -> list[PlannedSend]:
    world.couples.by_id[c.id] = c
    start = datetime(2026, 6, 1, tzinfo=UTC)
    found = planned_sends(c, start, start + timedelta(days=4))
    return [s for s in found if s.partner == partner]


def _sent(world: World, send: PlannedSend) -> str:
    world.clock.set(send.at)
    assert world.handle(send) is Outcome.SENT
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.provider_id is not None
    return record.provider_id


def test_receipts_only_move_forward_and_a_repeat_changes_nothing(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    sid = _sent(world, send)
    said = (("sent", True), ("queued", False), ("delivered", True), ("sent", False),
            ("delivered", False), ("undelivered", False))  # fmt: skip
    for status, advanced in said:
        update = world.receipts.record(world.receipt(send, status), world.clock.now())
        assert update is not None
        assert update.advanced is advanced, status
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.delivery_status, record.provider_id) == (DeliveryStatus.DELIVERED, sid)
    assert record.state is PromptState.SENT


def test_a_receipt_for_another_message_or_no_send_records_nothing(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    _sent(world, send)
    other = world.receipt(send, "undelivered", 30003, sid="SM" + "f" * 32)
    update = world.receipts.record(other, world.clock.now())
    assert update is not None
    assert not update.advanced
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.delivery_status is None
    form = {"MessageSid": "SM" + "1" * 32, "MessageStatus": "sent"}
    missing = Receipt.from_form("alex-sam/check_in/20260101T2000/prompt/alex", form)
    assert world.receipts.record(missing, world.clock.now()) is None


def test_a_receipt_ties_the_message_to_a_send_the_worker_never_recorded(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    world.clock.set(send.at)
    assert world.prompts.claim(Prompt.from_planned(send), world.clock.now())  # then it died
    sid = "SM" + "a" * 32
    update = world.receipts.record(world.receipt(send, "sent", sid=sid), world.clock.now())
    assert update is not None
    assert update.settled
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.state, record.provider_id) == (PromptState.SENT, sid)
    world.clock.advance(timedelta(minutes=10))  # past the lease: nothing to take over
    assert world.handle(send) is Outcome.DONE_BEFORE
    assert world.provider.accepted == []


def test_30003_sends_one_new_text_later_and_then_stops(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    _sent(world, send)
    world.clock.advance(timedelta(seconds=30))
    for _ in range(2):  # Twilio retries callbacks: one resend all the same
        world.receipts.record(world.receipt(send, "undelivered", 30003), world.clock.now())
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    planned = world.prompts.get(str(again))
    assert planned is not None
    assert (planned.state, planned.claimed_at, planned.attempts) == (PromptState.PENDING, None, 0)
    assert planned.retry_at == world.clock.now() + timedelta(minutes=20)
    world.clock.set(planned.retry_at)
    assert world.handle(again) is Outcome.SENT
    assert world.handle(again) is Outcome.DONE_BEFORE
    first, second = world.provider.accepted
    assert (first.event_id, second.event_id) == (send.event_id, str(again))
    assert second.body == first.body
    assert second.to == first.to
    # The resend is undelivered too: that is the end of it.
    world.receipts.record(world.receipt(str(again), "undelivered", 30003), world.clock.now())
    rows = world.prompts.recent("alex-sam", "alex", limit=10)
    assert sorted(r.event_id for r in rows) == sorted([send.event_id, str(again)])
    world.clock.advance(timedelta(hours=1))
    assert world.handle(again) is Outcome.DONE_BEFORE
    assert len(world.provider.accepted) == 2


def test_a_resend_past_the_texts_deadline_is_recorded_missed(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    _sent(world, send)
    world.clock.set(send.at + timedelta(hours=1, minutes=50))  # 20 minutes on is past 2 h
    world.receipts.record(world.receipt(send, "undelivered", 30003), world.clock.now())
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    world.clock.advance(timedelta(minutes=20))
    assert world.handle(again) is Outcome.MISSED
    assert len(world.provider.accepted) == 1


def test_a_resend_is_not_sent_once_the_partner_answered(world: World) -> None:
    c = couple({"kind": "check_in"})
    send = _sends(world, c)[0]
    _sent(world, send)
    world.receipts.record(world.receipt(send, "undelivered", 30008), world.clock.now())
    world.partners.set_opted_out(c.id, "alex", True, world.clock.now())
    world.clock.advance(timedelta(minutes=2))
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    assert world.handle(again) is Outcome.MISSED
    assert len(world.provider.accepted) == 1


@pytest.mark.parametrize("code", [30005, 30006, 21211, 21614])
def test_an_unreachable_number_gets_nothing_more_until_the_file_changes_it(
    world: World, code: int
) -> None:
    c = couple({"kind": "check_in"})
    first, second, third = _sends(world, c)[:3]
    _sent(world, first)
    world.receipts.record(world.receipt(first, "failed", code), world.clock.now())
    state = world.partners.get(c.id, "alex")
    assert state.unreachable is not None
    assert state.unreachable.code == code
    assert ALEX not in state.unreachable.number  # a fingerprint, never the number
    world.clock.set(second.at)
    assert world.handle(second) is Outcome.MISSED
    record = world.prompts.get(second.event_id)
    assert record is not None
    assert f"error {code}" in (record.error or "")
    assert world.partners.get(c.id, "sam").unreachable is None  # the other partner is fine
    # A new number in the couple file: texts resume without anyone clearing the mark.
    moved = couple({"kind": "check_in"},
                   partners=[{"name": "Alex", "phone": "+15550000009"},
                             {"name": "Sam", "phone": "+15550000002"}])  # fmt: skip
    world.couples.by_id[c.id] = moved
    world.clock.set(third.at)
    assert world.handle(third) is Outcome.SENT
    assert world.provider.accepted[-1].to == "+15550000009"


def test_a_refusal_at_sending_takes_the_same_remedy(world: World) -> None:
    c = couple({"kind": "check_in"})
    first, second = _sends(world, c)[:2]
    world.provider.failures = [PermanentDeliveryError("Twilio answered HTTP 400", 21614)]
    world.clock.set(first.at)
    assert world.handle(first) is Outcome.FAILED
    assert world.partners.get(c.id, "alex").unreachable is not None
    world.clock.set(second.at)
    assert world.handle(second) is Outcome.MISSED
    assert world.provider.accepted == []


@pytest.mark.parametrize(("code", "words"), [(30007, "filtered"), (30034, "registered")])
def test_filtering_and_account_errors_are_never_resent_and_tell_the_operator(
    world: World, caplog: pytest.LogCaptureFixture, code: int, words: str
) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    _sent(world, send)
    with caplog.at_level(logging.WARNING, logger="hearth.deliveries"):
        world.receipts.record(world.receipt(send, "undelivered", code), world.clock.now())
    assert "check_in" in caplog.text
    assert str(code) in caplog.text
    assert words in caplog.text
    assert ALEX not in caplog.text
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    assert world.prompts.get(str(again)) is None
    assert world.partners.get("alex-sam", "alex").unreachable is None


def test_an_expired_validity_period_is_recorded_not_resent(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    _sent(world, send)
    world.receipts.record(world.receipt(send, "failed", 30036), world.clock.now())
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.delivery_status, record.delivery_code) == (DeliveryStatus.FAILED, 30036)
    again = SendId(send.id.occurrence_id, send.id.purpose.again(), send.partner)
    assert world.prompts.get(str(again)) is None
    assert world.partners.get("alex-sam", "alex") == world.partners.get("alex-sam", "nobody")


def test_an_opt_out_code_is_mirrored_and_an_unknown_code_only_recorded(world: World) -> None:
    c = couple({"kind": "check_in"})
    first, second = _sends(world, c)[:2]
    _sent(world, first)
    world.receipts.record(world.receipt(first, "failed", 39999), world.clock.now())
    record = world.prompts.get(first.event_id)
    assert record is not None
    assert record.delivery_code == 39999
    assert world.partners.get(c.id, "alex") == world.partners.get(c.id, "nobody")
    _sent(world, second)
    world.receipts.record(world.receipt(second, "failed", 21610), world.clock.now())
    assert world.partners.get(c.id, "alex").opted_out


def test_an_ambiguous_send_is_looked_up_and_never_texted_twice(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    world.provider.failures = [AmbiguousDeliveryError("no answer from Twilio in time")]
    world.clock.set(send.at)
    assert world.handle(send) is Outcome.UNKNOWN
    # Not looked at again before recheck_after: the provider gets time to list it.
    world.clock.advance(timedelta(seconds=30))
    assert world.handle(send) is Outcome.DONE_BEFORE
    assert world.provider.lookups == 0
    world.clock.advance(timedelta(seconds=31))
    assert world.handle(send) is Outcome.SENT  # found in the provider's list
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.state is PromptState.SENT
    assert record.provider_id == world.provider.held[send.event_id]
    assert world.provider.accepted == []  # zero second texts
    assert world.provider.lookups == 1


def test_an_ambiguous_send_the_provider_never_took_is_sent_once(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    world.clock.set(send.at)
    world.provider.failures = [AmbiguousDeliveryError("HTTP 503")]
    world.provider.lookup_unknown = True
    assert world.handle(send) is Outcome.UNKNOWN
    world.provider.held.clear()  # it had not taken it after all
    world.clock.advance(timedelta(minutes=2))
    assert world.handle(send) is Outcome.UNKNOWN  # the list could not be read: still unknown
    assert world.provider.accepted == []
    world.provider.lookup_unknown = False
    world.clock.advance(timedelta(minutes=2))
    assert world.handle(send) is Outcome.SENT
    assert [t.event_id for t in world.provider.accepted] == [send.event_id]
    world.clock.advance(timedelta(minutes=2))
    assert world.handle(send) is Outcome.DONE_BEFORE


def test_an_unknown_send_past_its_deadline_is_recorded_missed_not_sent(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    world.clock.set(send.at)
    world.provider.failures = [AmbiguousDeliveryError("HTTP 500")]
    assert world.handle(send) is Outcome.UNKNOWN
    world.provider.held.clear()
    world.clock.advance(timedelta(hours=3))
    assert world.handle(send) is Outcome.MISSED
    assert world.provider.accepted == []


def test_a_receipt_settles_an_unknown_send_before_any_lookup(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    world.clock.set(send.at)
    world.provider.failures = [AmbiguousDeliveryError("HTTP 502")]
    assert world.handle(send) is Outcome.UNKNOWN
    sid = "SM" + "b" * 32
    world.receipts.record(world.receipt(send, "delivered", sid=sid), world.clock.now())
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert (record.state, record.provider_id, record.delivery_status) == (
        PromptState.SENT, sid, DeliveryStatus.DELIVERED)  # fmt: skip
    world.clock.advance(timedelta(minutes=5))
    assert not world.prompts.claim(Prompt.from_planned(send), world.clock.now())
    assert world.provider.lookups == 0


def test_the_claim_of_an_unknown_send_says_recheck(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in"}))[0]
    now = send.at
    prompt = Prompt.from_planned(send)
    assert world.prompts.claim(prompt, now) is Claim.NEW
    assert world.prompts.mark_unknown(send.event_id, "timeout", now)
    assert world.prompts.claim(prompt, now + timedelta(seconds=59)) is Claim.NOT_CLAIMED
    claim = world.prompts.claim(prompt, now + timedelta(seconds=61))
    assert claim is Claim.RECHECK
    assert claim.may_have_sent
    assert world.prompts.claim(prompt, now + timedelta(seconds=62)) is Claim.NOT_CLAIMED


def test_a_sent_text_records_its_segments(world: World) -> None:
    send = _sends(world, couple({"kind": "check_in", "texts": {"prompt": "Hi {partner} 🌙"}}))[0]
    _sent(world, send)
    record = world.prompts.get(send.event_id)
    assert record is not None
    assert record.segments == 1
