"""Each lifecycle defect of issue [E], end to end through the real processes: a scheduler,
a Dramatiq worker and the web app (``python -m service.cli …``), a Redis of the test's own,
a SQLite prompt log and the console sender's outbox.

Time: every process runs on the same shifted clock (``HEARTH_CLOCK_OFFSET_S``), so that the
instant a test picks comes due seconds after the processes start. To see a later instant
(a snooze's, a moved date's) without waiting for it, a test stops the scheduler and the
worker and starts them again on a clock shifted further: a restart after some downtime, as
far as they can tell, which is itself part of what is tested.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path
from zoneinfo import ZoneInfo

from redis import Redis

from service.cli.reply import post_reply
from service.settings import Settings
from service.storage import PromptState
from tests.faults.conftest import Log
from tests.faults.processes import (
    Fleet,
    RedisServer,
    clock_offset,
    couple_text,
    hearth_env,
    next_local,
    outbox_counts,
)
from tests.waiting import outbox_lines, wait_for
from tests.web_server import free_port

BERLIN = ZoneInfo("Europe/Berlin")
ALEX, SAM = "+491510000001", "+491510000002"  # couple_text(0, …)'s numbers
CHECK_IN_AT_21 = couple_text(0, [("check_in", "every day at 21:00")])
LEAD_S = 6.0  # start-up of the processes before the instant under test
WAIT_S = 30.0  # bounds, never measurements


class Service:
    """Scheduler, worker and web of one test, on one config, Redis, database and outbox."""

    def __init__(self, tmp: Path, redis: RedisServer, log: Log, config: Path) -> None:
        self.tmp, self.redis, self.log, self.config = tmp, redis, log, config
        self.outbox = tmp / "outbox.jsonl"
        self.port = free_port()
        self.fleet = Fleet(tmp, {})
        self.generation = 0

    def env(self, offset_s: float) -> dict[str, str]:
        return hearth_env(
            config=self.config,
            data=self.tmp / "var",
            outbox=self.outbox,
            redis_url=self.redis.url,
            database_url=self.log.url,
            offset_s=offset_s,
            HEARTH_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
        )

    def start(self, offset_s: float, *, web: bool = False) -> None:
        """Scheduler and worker (and the web app) on a clock shifted by ``offset_s``."""
        self.generation += 1
        env = self.env(offset_s)
        self.fleet.worker(f"worker-{self.generation}", threads=2, env=env)
        self.fleet.scheduler(f"scheduler-{self.generation}", env=env)
        if web:
            command = [sys.executable, "-m", "service.cli", "web", "--port", str(self.port)]
            self.fleet.start("web", command, env)
            wait_for(self._web_up, WAIT_S, "the web app", detail=self.fleet.logs)
        self.fleet.wait_worker_ready(f"worker-{self.generation}")

    def stop(self) -> None:
        """Stop scheduler and worker (SIGTERM): the web app keeps serving."""
        self.fleet.stop(f"scheduler-{self.generation}")
        self.fleet.stop(f"worker-{self.generation}")

    def reply(self, phone: str, body: str) -> str:
        """Text Hearth as a partner, through the signed webhook; the MessageSid."""
        settings = Settings.model_validate(self.env(0))
        sid, status, _ = post_reply(settings, phone, body)
        assert status == 200, self.fleet.logs()
        return sid

    def lines(self) -> list[dict[str, str]]:
        return [json.loads(line) for line in outbox_lines(self.outbox)]

    def sent(self, predicate: str) -> list[dict[str, str]]:
        return [x for x in self.lines() if predicate in x["event_id"]]

    def wait_sent(self, predicate: str, count: int = 1) -> list[dict[str, str]]:
        wait_for(
            lambda: len(self.sent(predicate)) >= count or bool(self.fleet.died()),
            WAIT_S,
            f"{count} text(s) matching {predicate!r}",
            detail=self.fleet.logs,
        )
        assert not self.fleet.died(), self.fleet.logs()
        return self.sent(predicate)

    def _web_up(self) -> bool:
        import urllib.request

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2):
                return True
        except OSError:
            return False


def _assert_once(service: Service) -> None:
    twice = {e: n for e, n in outbox_counts(service.outbox).items() if n > 1}
    assert twice == {}, f"sent twice: {twice}"


def test_a_snooze_goes_through_the_claim_to_the_outbox(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    service = _service(
        tmp_path, redis_server, sqlite_log, _couple("check_in", "every day at 21:00")
    )
    due = _next(time_of_day(21, 0))
    with service.fleet:
        offset = clock_offset(due, LEAD_S)
        service.start(offset, web=True)
        service.wait_sent("/prompt/alex")
        # Replied at ~21:00: the snooze comes due at ~21:05, after the occurrence began.
        service.reply(ALEX, "SNOOZE 5m")
        confirmation = service.wait_sent("reply/")
        assert "remind you about your check-in at 21:05" in confirmation[0]["body"]
        service.stop()
        service.start(offset + 5 * 60 - 2)  # five minutes later, as far as they can tell
        [snoozed] = service.wait_sent("/snooze-")
        assert snoozed["partner"] == "alex"
        record = sqlite_log.prompts.get(snoozed["event_id"])
        assert record is not None
        assert record.state is PromptState.SENT
        _assert_once(service)


def test_a_moved_date_nights_prompt_goes_out_at_its_new_time(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    service = _service(
        tmp_path,
        redis_server,
        sqlite_log,
        _couple("date_night", "every friday at 19:30") + "    remind: [3h]\n",
    )
    friday = _next(time_of_day(16, 30), weekday=4)
    with service.fleet:
        offset = clock_offset(friday, LEAD_S)
        service.start(offset, web=True)
        service.wait_sent("/reminder-3h/alex")
        service.reply(ALEX, "MOVE sat 20:00")
        [confirmation] = service.wait_sent("reply/")
        assert confirmation["body"].startswith("Moved date night to Sat"), confirmation["body"]
        service.stop()
        saturday = (friday.astimezone(BERLIN) + timedelta(days=1)).replace(hour=20, minute=0)
        service.start(clock_offset(saturday.astimezone(UTC), 4))
        moved = service.wait_sent("/prompt@", count=2)
        assert {x["partner"] for x in moved} == {"alex", "sam"}
        # The Friday 19:30 prompt was never sent: the date moved before it came due.
        assert service.sent("/prompt/") == []
        _assert_once(service)


def test_due_sends_survive_a_replan_after_downtime(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    service = _service(
        tmp_path, redis_server, sqlite_log, _couple("check_in", "every day at 21:00")
    )
    due = _next(time_of_day(21, 0))
    with service.fleet, Redis.from_url(redis_server.url) as redis:
        offset = clock_offset(due, 3600)  # an hour early: plan, then go down
        service.start(offset)
        wait_for(lambda: redis.zcard("hearth:due") > 0, WAIT_S, "the first plan")
        service.stop()
        # While everything is down the 21:00 prompts come due, and the file is edited (a new
        # ritual): the restarted scheduler re-plans the couple in the tick that claims them.
        (service.config / "a.yaml").write_text(
            _couple("check_in", "every day at 21:00")
            + "  - kind: gratitude\n    schedule: every day at 21:30\n"
        )
        service.start(offset + 3600 + 20 * 60)  # 21:20 on their clocks: within the grace
        sent = service.wait_sent("/check_in/", count=2)
        assert {x["partner"] for x in sent} == {"alex", "sam"}
        wait_for(lambda: any("/gratitude/" in e for e in _pending(redis)), WAIT_S,
                 "the new ritual planned at once")  # fmt: skip
        _assert_once(service)


def test_a_weekly_summary_waits_for_the_end_of_the_partners_quiet_hours(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    service = _service(
        tmp_path,
        redis_server,
        sqlite_log,
        _couple("check_in", "every day at 21:00", alex_quiet="18:00-19:01"),
    )
    sunday = _next(time_of_day(19, 0), weekday=6)  # the summary's default time
    with service.fleet:
        offset = clock_offset(sunday, LEAD_S)
        service.start(offset)
        [sam] = service.wait_sent("/summary/sam")
        assert service.sent("/summary/alex") == [], "not inside Alex's quiet hours"
        at = datetime.fromisoformat(sam["sent_at"]).astimezone(BERLIN)
        assert at.strftime("%a %H:%M") == "Sun 19:00"
        service.stop()
        assert service.sent("/summary/alex") == []
        service.start(offset + 60 - 3)  # a minute later, as far as they can tell
        [alex] = service.wait_sent("/summary/alex")  # at 19:01, when Alex's quiet hours end
        at = datetime.fromisoformat(alex["sent_at"]).astimezone(BERLIN)
        assert at.strftime("%a %H:%M") == "Sun 19:01"
        _assert_once(service)


def test_a_worker_started_while_a_file_is_broken_runs_the_last_good_version(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    service = _service(
        tmp_path, redis_server, sqlite_log, _couple("check_in", "every day at 21:00")
    )
    due = _next(time_of_day(21, 0))
    offset = clock_offset(due, LEAD_S + 4)
    with service.fleet, Redis.from_url(redis_server.url) as redis:
        env = service.env(offset)
        service.fleet.scheduler("scheduler", env=env)
        wait_for(lambda: redis.hlen("hearth:config:last-good") == 1, WAIT_S,
                 "the scheduler to load the file")  # fmt: skip
        (service.config / "a.yaml").write_text("timezone: Europe/Berlin\npartners: [oops\n")
        service.fleet.worker("worker", threads=2, env=env)  # it never saw the good version
        service.fleet.wait_worker_ready("worker")
        sent = service.wait_sent("/prompt/", count=2)
        assert {x["partner"] for x in sent} == {"alex", "sam"}
        for text in sent:
            record = sqlite_log.prompts.get(text["event_id"])
            assert record is not None
            assert record.state is PromptState.SENT
        _assert_once(service)


def _service(tmp: Path, redis: RedisServer, log: Log, couple: str) -> Service:
    """The service of one test, for one couple file ``couple``."""
    config = tmp / "couples"
    config.mkdir()
    (config / "a.yaml").write_text(couple)
    return Service(tmp, redis, log, config)


def _next(at: time_of_day, weekday: int | None = None) -> datetime:
    """The next instant at wall time ``at`` in Berlin (on ``weekday``, 0 = Monday) that
    leaves the processes time to start."""
    found = next_local(at, datetime.now(UTC) + timedelta(seconds=LEAD_S + 5))
    while weekday is not None and found.astimezone(BERLIN).weekday() != weekday:
        found += timedelta(days=1)
    return found


def _pending(redis: Redis) -> list[str]:
    return [m.decode() for m in redis.zrange("hearth:due", 0, -1)]


def _couple(kind: str, schedule: str, *, alex_quiet: str | None = None) -> str:
    text = couple_text(0, [(kind, schedule)])
    assert f'"{ALEX}"' in text
    assert f'"{SAM}"' in text
    if alex_quiet is not None:
        phone = f'    phone: "{ALEX}"\n'
        text = text.replace(phone, f'{phone}    quiet_hours: "{alex_quiet}"\n')
    return text
