"""Logs, metrics and readiness through the real processes: a web app, a scheduler and a
Dramatiq worker (``hearth worker``), sending through the twilio library to the stateful
Twilio fake, which posts signed delivery receipts back.

One run covers what an operator sees: ``/readyz`` says 503 naming the scheduler and the
workers until they start, then 200, and always names the broken couple file; a prompt goes
out and its receipt comes back; a partner replies (a command and a journal-like text); a
calendar app fetches the feed, then gets a 304, a partner opens their dashboard, and stray
requests hit capability paths;
``/metrics`` counts all of it. Every line every process wrote is then read: each is one JSON
object (``HEARTH_LOG_FORMAT=json``), and none holds a phone number, a text's body, the
reply's words, the feed token or the broken file's values.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx

from service.storage import migrate
from tests.couple_texts import LEAKY
from tests.faults.processes import Fleet, daytime_offset_s, hearth_env
from tests.twilio_fake import TwilioFake
from tests.waiting import wait_for
from tests.web_server import free_port

ROOT = Path(__file__).resolve().parents[2]
ALEX, SAM = "+4915112340001", "+4915112340002"
FROM = "+15005550006"
REPLY = "Done! grateful for the marmalade pancakes"
JOURNAL = "#gratitude the quiet walk by the canal"


def test_logs_metrics_and_readiness_through_the_processes(
    tmp_path: Path, redis_url: str, twilio_fake: TwilioFake
) -> None:
    config = tmp_path / "couples"
    config.mkdir()
    shutil.copy(ROOT / "config" / "couples" / "alex-and-sam.yaml", config)
    (config / "leaky.yaml").write_text(LEAKY, encoding="utf-8")
    database_url = f"sqlite:///{tmp_path / 'hearth.sqlite3'}"
    migrate(database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    fake = twilio_fake
    env = hearth_env(
        config=config, data=tmp_path / "var", outbox=tmp_path / "outbox.jsonl",
        redis_url=redis_url, database_url=database_url, offset_s=daytime_offset_s(),
        TWILIO_ACCOUNT_SID=fake.account_sid, TWILIO_AUTH_TOKEN=fake.auth_token,
        TWILIO_FROM=FROM, HEARTH_TWILIO_API_URL=fake.url, HEARTH_PUBLIC_URL=base,
        HEARTH_LOG_FORMAT="json",
    )  # fmt: skip

    def hearth(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", *args], env=env, cwd=tmp_path,
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    with Fleet(tmp_path, env) as fleet:
        fleet.start("web", [sys.executable, "-m", "service.cli", "web", "--port", str(port)])
        wait_for(lambda: _status(f"{base}/healthz") == 200, 30, "the web app", detail=fleet.logs)

        not_ready = httpx.get(f"{base}/readyz", timeout=10)
        assert not_ready.status_code == 503
        body = not_ready.json()
        assert body["not_ready"] == ["scheduler", "workers"]
        assert (body["redis"], body["database"]) == ("ok", "ok")
        assert body["scheduler"] == "no scheduler has run"
        assert body["workers"] == "no live worker"
        assert body["config_files_failing"] == ["leaky.yaml"]

        fleet.scheduler()
        fleet.worker(threads=2)
        wait_for(lambda: _status(f"{base}/readyz") == 200, 60, "/readyz 200", detail=fleet.logs)
        ready = httpx.get(f"{base}/readyz", timeout=10).json()
        assert ready["status"] == "ready"
        assert ready["not_ready"] == []
        assert ready["config_files_failing"] == ["leaky.yaml"]  # reported, not unready

        fired = hearth("fire", "alex-and-sam", "check_in", "--partner", "Sam", "--wait", "30")
        assert fired.returncode == 0, fired.stdout + fired.stderr + fleet.logs()
        (prompt,) = fake.messages
        assert [p.status for p in fake.advance(prompt.sid)] == [204, 204]

        replied = hearth("reply", "--from", SAM, REPLY, "--wait", "0")
        assert replied.returncode == 0, replied.stderr
        journal = hearth("reply", "--from", ALEX, JOURNAL, "--wait", "0")
        assert journal.returncode == 0, journal.stderr
        wait_for(lambda: len(fake.messages) >= 3, 30, "two confirmations", detail=fleet.logs)

        urls = hearth("feed", "urls", "alex-and-sam")
        assert urls.returncode == 0, urls.stderr
        feed_url = urls.stdout.splitlines()[1].split()[-1]
        token = feed_url.rsplit("/", 1)[1].removesuffix(".ics")
        wait_for(lambda: _status(feed_url) == 200, 30, "the feed", detail=fleet.logs)
        etag = httpx.get(feed_url, timeout=10).headers["etag"]
        assert httpx.get(feed_url, headers={"If-None-Match": etag}, timeout=10).status_code == 304
        for stray in (f"//feeds//{token}.txt?x=1", f"/feeds/{token}", f"/c/{token}"):
            assert httpx.get(base + stray, timeout=10).status_code == 404
        pages = hearth("dashboard", "urls", "alex-and-sam")
        assert pages.returncode == 0, pages.stderr
        page_url = pages.stdout.splitlines()[0].split()[-1]
        page_token = page_url.rsplit("/", 1)[1]
        assert httpx.get(page_url, timeout=10).status_code == 200

        metrics = httpx.get(f"{base}/metrics", timeout=10)
        assert metrics.status_code == 200
        assert metrics.headers["content-type"].startswith("text/plain")
        values = _samples(metrics.text)
        assert values['hearth_sends{kind="fire",state="sent"}'] == 1
        assert values['hearth_sends{kind="confirmation",state="sent"}'] == 2
        assert values['hearth_replies{verb="done"}'] == 1
        assert sum(v for k, v in values.items() if k.startswith("hearth_replies{")) == 2
        assert values['hearth_deliveries{status="delivered"}'] == 1
        assert values['hearth_feed_requests_total{status="200"}'] >= 2
        assert values['hearth_feed_requests_total{status="304"}'] == 1
        assert values['hearth_dashboard_requests_total{status="200"}'] == 1
        assert values['hearth_dashboard_requests_total{status="404"}'] == 1
        assert values['hearth_queue_messages{queue="prompts",state="ready"}'] == 0
        assert 'hearth_queue_messages{queue="replies",state="dead"}' in values
        assert values["hearth_worker_consumers"] >= 1
        assert values["hearth_scheduler_lag_seconds"] < 30
        assert values["hearth_scheduler_heartbeat_age_seconds"] < 30
        assert values["hearth_config_files_failing"] == 1
        bodies = [m.body for m in fake.messages]
        assert not fleet.died(), fleet.logs()

    logged = {p.name: p.read_text(errors="replace") for p in tmp_path.glob("*.log")}
    assert set(logged) >= {"web.log", "scheduler.log", "worker.log"}
    secrets = [
        ALEX, SAM, ALEX[1:], SAM[1:], "7700 900123", "7700900456", "miss you",
        REPLY, "marmalade", "quiet walk", token, page_token, *bodies,
    ]  # fmt: skip
    for name, text in logged.items():
        for secret in secrets:
            assert secret not in text, f"{name} holds {secret!r}"
        for line in text.splitlines():
            if line.strip():
                assert isinstance(json.loads(line), dict), f"{name}: {line!r}"
    everything = "\n".join(logged.values())
    assert "/feeds/***" in everything  # the access log saw the feed, redacted
    assert "/c/***" in everything
    assert "leaky.yaml" in everything  # the broken file is named, its values are not


def _status(url: str) -> int | None:
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.HTTPError:
        return None


_SAMPLE = re.compile(r"^(?P<name>[a-z_]+(?:\{[^}]*\})?) (?P<value>\S+)$")


def _samples(text: str) -> dict[str, float]:
    """Prometheus's text format: sample (name and labels as written) -> value."""
    out = {}
    for line in text.splitlines():
        if (m := _SAMPLE.match(line)) is not None:
            out[m["name"]] = float(m["value"])
    return out
