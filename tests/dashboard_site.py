"""A served dashboard over a seeded history, for the HTTP and the browser tests.

The history is real rows in a real SQLite log, written by the storage code the service uses
(replies settled with their answers and skips, prompts a pause held, a pause in force), and
the app is the real one under uvicorn. ``EXPECTED`` is what each heatmap must show, worked
out by hand from the seeding below (the clock stands at Wed 25 Nov 2026, 07:00 in New York:
twelve weeks from Mon 7 Sep to Sun 29 Nov).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pytest

from service.domain.clock import ManualClock
from service.runtime import Runtime
from service.settings import load_settings
from service.storage import (
    AnswerEffect,
    ChangeEffect,
    PartnerStates,
    Prompt,
    PromptLog,
    ReplyLog,
    Settlement,
    make_engine,
    migrate,
)
from service.storage.prompt_log import PAUSED_REASON
from service.web.app import create_app
from tests.domain.builders import utc
from tests.web_server import Serving

COUPLE = "alex-sam"
COUPLE_YAML = """\
couple: alex-sam
timezone: America/New_York
partners:
  - {name: Alex, phone: "+15550000001"}
  - {name: Sam, phone: "+15550000002"}
rituals:
  - kind: date_night
    schedule: every friday at 19:30
  - kind: check_in
    reveal: true
"""
NOW = utc(2026, 11, 25, 12)  # Wed 07:00 in New York
SCRIPT_NOTE = "<script>alert('x')</script> & a <b>bold</b> night"
SAM_NOTE = "Sam's own words, not for Alex's page"

# Per ritual, how many cells of each state the heatmap must hold.
EXPECTED = {
    # Fridays 11 Sep - 27 Nov: 7 done, 25 Sep skipped, 2 and 30 Oct missed, 9 Oct paused,
    # 27 Nov ahead.
    "date_night": {"done": 7, "skipped": 1, "missed": 2, "paused": 1, "upcoming": 1},
    # Every day 7 Sep - 29 Nov (84): 23 Nov done by both, 21 Nov skipped, 25 Nov held by
    # Alex's pause, 24 Nov still open, 26-29 Nov ahead, the other 76 missed (22 Nov only
    # Alex answered: a check-in needs both).
    "check_in": {"done": 1, "skipped": 1, "missed": 76, "paused": 1, "upcoming": 5},
}
EXPECTED_STREAKS = {"date_night": 3, "check_in": 1}


@dataclass
class Site:
    base: str
    runtime: Runtime
    clock: ManualClock

    def url(self, partner: str = "alex") -> str:
        [found] = self.runtime.dashboard_links().urls(COUPLE, [partner], self.clock.now())
        return found.url


@pytest.fixture
def site(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    config = tmp_path / "couples"
    config.mkdir()
    (config / f"{COUPLE}.yaml").write_text(COUPLE_YAML, encoding="utf-8")
    db_url = f"sqlite:///{tmp_path / 'data' / 'hearth.sqlite3'}"
    (tmp_path / "data").mkdir()
    holder = Serving(None)  # the address first: the public URL names it
    for name, value in {
        "HEARTH_CONFIG_DIR": str(config),
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "REDIS_URL": redis_url,
        "DATABASE_URL": db_url,
        "HEARTH_PUBLIC_URL": holder.base,
    }.items():
        monkeypatch.setenv(name, value)
    migrate(db_url)
    clock = ManualClock(NOW)
    engine = make_engine(db_url)
    _seed(engine)
    settings = load_settings()
    holder.server.config.app = create_app(settings, redis_url, clock)
    runtime = Runtime(settings, clock=clock, engine=engine)
    try:
        with holder as base:
            yield Site(base, runtime, clock)
    finally:
        runtime.close()
        engine.dispose()


def _seed(engine: object) -> None:
    replies = ReplyLog(engine)  # type: ignore[arg-type]
    date_night = "alex-sam/date_night/2026{}T1930"
    for day, who in (("0911", "alex"), ("0918", "sam"), ("1016", "alex"), ("1023", "sam"),
                     ("1106", "alex"), ("1113", "alex"), ("1120", "sam")):  # fmt: skip
        _answer(replies, "date_night", date_night.format(day), who, "done")
    skipped = date_night.format("0925")
    _answer(replies, "date_night", skipped, "sam", "skipped",
            change=ChangeEffect(COUPLE, "date_night", skipped, "sam", skipped=True))  # fmt: skip
    check_in = "alex-sam/check_in/2026{}T2100"
    _answer(replies, "check_in", check_in.format("1123"), "alex", "journal", SCRIPT_NOTE)
    _answer(replies, "check_in", check_in.format("1123"), "sam", "journal", SAM_NOTE)
    _answer(replies, "check_in", check_in.format("1122"), "alex", "done")
    _answer(replies, "check_in", check_in.format("1121"), "sam", "skipped")
    # Sam had paused in October: the send path recorded the date night's prompt missed.
    prompts = PromptLog(engine)  # type: ignore[arg-type]
    held = Prompt(f"{date_night.format('1009')}/prompt/sam", date_night.format("1009"), COUPLE,
                  "date_night", "sam", "prompt", utc(2026, 10, 9, 23, 30))  # fmt: skip
    assert prompts.claim(held, utc(2026, 10, 9, 23, 30))
    assert prompts.mark_missed(held.event_id, f"{PAUSED_REASON} until 2026-10-12", NOW)
    # Both answered the 23rd's check-in: Alex's answer was texted to Sam (Sam's to Alex not
    # yet), so Sam's page shows Alex's words and Alex's page shows nothing of Sam's.
    reveal = Prompt(f"{check_in.format('1123')}/reveal/sam", check_in.format("1123"), COUPLE,
                    "check_in", "sam", "reveal", utc(2026, 11, 24, 2))  # fmt: skip
    assert prompts.claim(reveal, NOW)
    assert prompts.mark_sent(reveal.event_id, "console-reveal", NOW)
    # Alex paused yesterday until tomorrow morning (UTC): tonight's check-in is held.
    PartnerStates(engine).pause(COUPLE, "alex", utc(2026, 11, 26, 12), utc(2026, 11, 24))  # type: ignore[arg-type]


def _answer(
    replies: ReplyLog,
    ritual: str,
    occurrence: str,
    partner: str,
    action: str,
    note: str = "",
    change: ChangeEffect | None = None,
) -> None:
    sid = "SM" + secrets.token_hex(16)
    at: datetime = NOW
    assert replies.store(sid, {"From": "+1555000000x", "Body": note or action}, at)
    settled = Settlement(
        action, None, COUPLE, partner, action, occurrence,
        answers=(AnswerEffect(COUPLE, ritual, occurrence, partner, action, note),),
        changes=(change,) if change else (),
    )  # fmt: skip
    assert replies.settle(sid, settled, at)
