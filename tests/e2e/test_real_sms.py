"""Real SMS through the real processes: a scheduler, a worker and the web app, sending through
the twilio library to a stateful fake of Twilio's API, which posts signed delivery receipts
back to the web app.

Six couples (Berlin) have a check-in at 21:00 and a gratitude note at 21:31. Twilio is
scripted the way production goes wrong:
- couple-004's Alex's create is taken and then never answered (a read timeout), Sam's taken
  and answered 500, couple-005's Alex's answered 503 before Twilio took it: all three sends
  are ``unknown``;
- couple-000's Alex is unreachable (30003), couple-001's number is invalid (21211, refused at
  create), couple-002's is a landline (30005 on its receipt), couple-003's check-in is
  filtered (30007).
Receipts are posted for the texts recorded sent; then scheduler and worker are stopped and
started again half an hour later (their clocks shifted), as after a short outage. Then:
every unknown send was looked up in Twilio's list, and only the one Twilio never took is sent
again; couple-000's Alex gets exactly one resend; couple-001's and couple-002's Alex get no
gratitude note (their numbers are marked unreachable); everyone else gets each text once.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from datetime import time as time_of_day
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from redis import Redis

from service.domain.delivery import DeliveryStatus
from service.storage import PromptLog, PromptState
from tests.faults.conftest import Log
from tests.faults.processes import (
    Fleet,
    RedisServer,
    clock_offset,
    due_sends,
    hearth_env,
    next_due,
    wait_planned,
    write_couples,
)
from tests.twilio_fake import TwilioFake
from tests.waiting import wait_for
from tests.web_server import free_port

COUPLES = 6
LEAD_S = 10.0
SETTLE_S = 60.0  # bounds, never measurements: the hung create alone takes 15 s
FROM = "+15005550006"


def _number(couple: int, partner: str) -> str:
    return f"+49151{couple:05d}{'01' if partner == 'alex' else '02'}"


def test_receipts_codes_and_ambiguous_failures_through_the_processes(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log, twilio_fake: TwilioFake
) -> None:
    config = write_couples(tmp_path / "couples", COUPLES,
                           [("check_in", "every day at 21:00"),
                            ("gratitude", "every day at 21:31")])  # fmt: skip
    due, offset = next_due(time_of_day(21, 0), LEAD_S)
    fake = twilio_fake
    fake.clock_offset_s = offset
    fake.hang_after_accepting(1, seconds=20, to=_number(4, "alex"))
    fake.fail_next(500, 20500, accepted=True, to=_number(4, "sam"))
    fake.fail_next(503, 20503, accepted=False, to=_number(5, "alex"))
    fake.set_outcome(_number(0, "alex"), "undelivered", 30003)
    fake.refuse(_number(1, "alex"), 21211)
    fake.set_outcome(_number(2, "alex"), "failed", 30005)
    fake.set_outcome(_number(3, "alex"), "undelivered", 30007)
    port = free_port()
    public = f"http://127.0.0.1:{port}"

    def env_at(offset_s: float) -> dict[str, str]:
        return hearth_env(
            config=config, data=tmp_path / "var", outbox=tmp_path / "outbox.jsonl",
            redis_url=redis_server.url, database_url=sqlite_log.url, offset_s=offset_s,
            TWILIO_ACCOUNT_SID=fake.account_sid, TWILIO_AUTH_TOKEN=fake.auth_token,
            TWILIO_FROM=FROM, HEARTH_TWILIO_API_URL=fake.url, HEARTH_PUBLIC_URL=public,
        )  # fmt: skip

    prompts = sqlite_log.prompts
    check_ins = due_sends(config, due)
    gratitude = due_sends(config, due + timedelta(minutes=31))
    assert (len(check_ins), len(gratitude)) == (2 * COUPLES, 2 * COUPLES)
    first = next(e for e in check_ins if e.startswith("couple-000/") and e.endswith("/alex"))
    resend = first.replace("/prompt/", "/prompt~resend/")
    with Fleet(tmp_path, env_at(offset)) as fleet, Redis.from_url(redis_server.url) as redis:
        fleet.start("web", [sys.executable, "-m", "service.cli", "web", "--port", str(port)])
        fleet.worker(threads=4)
        fleet.scheduler()
        wait_for(lambda: _answers(f"{public}/healthz"), 30, "the web app", every_s=0.2)
        wait_planned(redis, COUPLES, fleet)
        wait_for(lambda: _settled(prompts, check_ins), LEAD_S + SETTLE_S,
                 "every check-in to be settled", every_s=0.2)  # fmt: skip
        states = Counter(_state(prompts, e) for e in check_ins)
        assert states == {PromptState.SENT: 8, PromptState.UNKNOWN: 3, PromptState.FAILED: 1}, (
            fleet.logs()
        )
        refused = next(e for e in check_ins if e.startswith("couple-001/") and e.endswith("/alex"))
        assert _state(prompts, refused) is PromptState.FAILED

        # Receipts for what was recorded sent; the unknown ones must be found by looking.
        for message in fake.messages:
            record = prompts.get(_event(message.status_callback))
            if record is not None and record.state is PromptState.SENT:
                posts = fake.advance(message.sid)
                assert [p.status for p in posts] == [204] * len(posts), posts
        record = prompts.get(first)
        assert record is not None
        assert (record.delivery_status, record.delivery_code) == (DeliveryStatus.UNDELIVERED, 30003)
        assert _state(prompts, resend) is PromptState.PENDING

        # Half an hour later (a short outage): the resend's delayed message is still 20 real
        # minutes off, so the reconciler's re-queue of its planned row is what sends it.
        fleet.stop("scheduler")
        fleet.stop("worker")
        later = clock_offset(due + timedelta(minutes=31), LEAD_S)
        fake.clock_offset_s = later
        fleet.worker("worker-2", threads=4, env=env_at(later))
        fleet.scheduler("scheduler-2", env=env_at(later))
        wait_for(
            lambda: (
                _settled(prompts, {*check_ins, *gratitude, resend})
                and PromptState.UNKNOWN not in {_state(prompts, e) for e in check_ins}
            ),
            LEAD_S + SETTLE_S,
            "the resend, the lookups and the gratitude notes",
            every_s=0.2,
        )
        assert not fleet.died(), fleet.logs()

    counts = Counter((m.to, _event(m.status_callback).split("/")[1]) for m in fake.messages)
    for i in range(COUPLES):
        for partner in ("alex", "sam"):
            number = _number(i, partner)
            check_in = {(0, "alex"): 2, (1, "alex"): 0}.get((i, partner), 1)
            note = {(1, "alex"): 0, (2, "alex"): 0}.get((i, partner), 1)
            assert counts[(number, "check_in")] == check_in, (i, partner, counts)
            assert counts[(number, "gratitude")] == note, (i, partner, counts)
    # Zero second texts after the ambiguous failures: of the three unknown sends, the two
    # Twilio had taken were found in its list and recorded sent with its sid; the one it
    # never took was sent once.
    assert Counter(_state(prompts, e) for e in check_ins) == {
        PromptState.SENT: 11, PromptState.FAILED: 1}  # fmt: skip
    assert {prompts.get(e).provider_id for e in check_ins if prompts.get(e)} - {None} <= {  # type: ignore[union-attr]
        m.sid for m in fake.messages}  # fmt: skip
    assert _state(prompts, resend) is PromptState.SENT

    # Nothing any process logged names a partner's number.
    for log in tmp_path.glob("*.log"):
        assert "+49151" not in log.read_text(errors="replace"), log.name

    status = subprocess.run(
        [sys.executable, "-m", "service.cli", "status", "couple-002"],
        env=env_at(later), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    assert "alex: unreachable since" in status.stdout
    assert "30005" in status.stdout
    assert "sam: receiving" in status.stdout


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _event(status_callback: str | None) -> str:
    assert status_callback is not None
    return parse_qs(urlsplit(status_callback).query)["event"][0]


def _state(prompts: PromptLog, event_id: str) -> PromptState | None:
    record = prompts.get(event_id)
    return None if record is None else record.state


def _settled(prompts: PromptLog, event_ids: set[str]) -> bool:
    return all(_state(prompts, e) not in (None, PromptState.PENDING) for e in event_ids)
