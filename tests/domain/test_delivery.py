"""The delivery policy: receipts only move forward, and each error code has one remedy."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from service.domain.delivery import POLICIES, DeliveryStatus, Remedy, advances, policy_for
from service.domain.events import Purpose, SendId, parse_send_id

FINAL = {
    DeliveryStatus.DELIVERED,
    DeliveryStatus.UNDELIVERED,
    DeliveryStatus.FAILED,
    DeliveryStatus.CANCELED,
    DeliveryStatus.PARTIALLY_DELIVERED,
}


@given(st.lists(st.sampled_from(list(DeliveryStatus)), min_size=1, max_size=12))
def test_a_status_never_goes_back_whatever_order_callbacks_come_in(
    said: list[DeliveryStatus],
) -> None:
    recorded: DeliveryStatus | None = None
    for status in said:
        if advances(recorded, status):
            recorded = status
    assert recorded is not None
    assert recorded.rank == max(s.rank for s in said)
    # Among callbacks of the top rank, the first one stands: a retried or contradicting
    # final callback never replaces it.
    assert recorded == next(s for s in said if s.rank == recorded.rank)


def test_the_final_statuses_outrank_sent_and_read_outranks_delivered() -> None:
    for status in FINAL:
        assert advances(DeliveryStatus.SENT, status)
        assert not advances(status, DeliveryStatus.SENT)
        assert not advances(status, DeliveryStatus.QUEUED)
    assert not advances(DeliveryStatus.UNDELIVERED, DeliveryStatus.DELIVERED)
    assert advances(DeliveryStatus.DELIVERED, DeliveryStatus.READ)


def test_the_issue_s_table_of_codes() -> None:
    assert policy_for(30003).remedy is Remedy.RESEND_ONCE
    assert policy_for(30008).remedy is Remedy.RESEND_ONCE
    for code in (30005, 30006, 21211, 21614):
        assert policy_for(code).remedy is Remedy.UNREACHABLE, code
    assert policy_for(30007).remedy is Remedy.FILTERED
    assert policy_for(21610).remedy is Remedy.OPTED_OUT
    unknown = policy_for(39999)
    assert unknown.remedy is Remedy.RECORD
    assert unknown.code == 39999
    assert policy_for(None).remedy is Remedy.RECORD


def test_every_resend_waits_and_nothing_else_does() -> None:
    for code, policy in POLICIES.items():
        assert policy.code == code
        assert policy.meaning
        if policy.remedy is Remedy.RESEND_ONCE:
            assert policy.resend_after is not None
            assert timedelta(0) < policy.resend_after <= timedelta(hours=1)
        else:
            assert policy.resend_after is None


def test_a_resend_has_its_own_id_that_names_the_text_it_repeats() -> None:
    first = parse_send_id("alex-sam/date_night/20261127T1930/reminder-3h@20261128T1830Z/sam")
    again = SendId(first.occurrence_id, first.purpose.again(), first.partner)
    spelled = str(again)
    assert spelled == "alex-sam/date_night/20261127T1930/reminder-3h@20261128T1830Z~resend/sam"
    assert parse_send_id(spelled) == again
    assert again.purpose.original == first.purpose
    assert again.purpose.resend
    assert not first.purpose.resend
    prompt = Purpose.prompt()
    assert str(prompt.again()) == "prompt~resend"
    assert Purpose.parse("prompt~resend") == prompt.again()
