"""Both answer, then both see, through the real processes: a scheduler, a Dramatiq worker and
the web app on a Redis of the test's own, a SQLite log and the console outbox (the harness of
``test_lifecycle.py``)."""

from __future__ import annotations

from datetime import time as time_of_day
from typing import TYPE_CHECKING

from tests.e2e.test_lifecycle import ALEX, LEAD_S, SAM, _assert_once, _couple, _next, _service
from tests.faults.processes import clock_offset

if TYPE_CHECKING:
    from pathlib import Path

    from tests.faults.conftest import Log
    from tests.faults.processes import RedisServer


def test_two_partners_answer_a_reveal_check_in_and_each_gets_the_others_answer_once(
    tmp_path: Path, redis_server: RedisServer, sqlite_log: Log
) -> None:
    text = _couple("check_in", "every day at 21:00")
    text = text.replace("    schedule: every day at 21:00\n",
                        "    schedule: every day at 21:00\n    reveal: true\n")  # fmt: skip
    assert "reveal: true" in text
    service = _service(tmp_path, redis_server, sqlite_log, text)
    due = _next(time_of_day(21, 0))
    with service.fleet:
        service.start(clock_offset(due, LEAD_S), web=True)
        service.wait_sent("/prompt/sam")
        service.wait_sent("/prompt/alex")
        service.reply(ALEX, "Long walk by the river, felt close again")
        service.wait_sent("reply/")
        assert service.sent("/reveal/") == []  # never before both answered
        service.reply(SAM, "Saw the sea for the first time this year")
        service.wait_sent("/reveal/", count=2)
        service.wait_sent("reply/", count=2)
        revealed = {x["partner"]: x["body"] for x in service.sent("/reveal/")}
        assert revealed == {
            "alex": "Sam's check-in: Saw the sea for the first time this year",
            "sam": "Alex's check-in: Long walk by the river, felt close again",
        }
        to = {x["partner"]: x["to"] for x in service.sent("/reveal/")}
        assert to == {"alex": ALEX, "sam": SAM}
    _assert_once(service)
    assert len(service.sent("/reveal/")) == 2
