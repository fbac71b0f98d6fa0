"""`hearth run` as a newcomer runs it: one command, a prompt within seconds, a clean stop."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.faults.processes import daytime_offset_s

HEARTH = Path(sys.executable).with_name("hearth")
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(predicate: object, timeout_s: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it is gone for our purposes.
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_run_serves_health_sends_a_fired_prompt_and_stops_everything(tmp_path: Path) -> None:
    """The README's loop on the embedded defaults: run, fire a prompt, answer it, stop."""
    config = tmp_path / "couples"
    shutil.copytree(ROOT / "config" / "couples", config)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "HEARTH_CONFIG_DIR": str(config),
        "HEARTH_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "HEARTH_CLOCK_OFFSET_S": repr(daytime_offset_s()),
    }
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [str(HEARTH), "run", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    outbox = tmp_path / "var" / "outbox.jsonl"
    try:
        _wait(lambda: _healthy(port), 60, "/healthz")
        fired = subprocess.run(
            [str(HEARTH), "fire", "alex-and-sam", "check_in", "--partner", "Sam"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert fired.returncode == 0, fired.stderr
        _wait(outbox.exists, 30, "the outbox")
        _wait(lambda: len(outbox.read_text().splitlines()) >= 1, 30, "a line in the outbox")
        (record,) = [json.loads(line) for line in outbox.read_text().splitlines()]
        assert record["partner"] == "sam"
        assert record["to"] == "+4915112340002"
        assert record["body"].startswith("Hi Sam, check-in time.")
        assert {"event_id", "occurrence_id", "couple", "ritual", "sent_at"} <= set(record)
        replied = subprocess.run(
            [str(HEARTH), "reply", "--from", "+4915112340002", "Done! lovely chat"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert replied.returncode == 0, replied.stderr
        assert "Hearth: Logged your check-in. Waiting on Alex's." in replied.stdout
        forged = subprocess.run(
            [str(HEARTH), "reply", "--from", "+4915112340002", "STOP", "--wait", "0"],
            env=env | {"HEARTH_DATA_DIR": str(tmp_path / "elsewhere")},  # another dev token
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert forged.returncode == 1
        assert "403" in forged.stderr
        _feed_commands(env, port)
        banner = (tmp_path / "run.log").read_text()
        assert "next prompts:" in banner
        assert f"http://127.0.0.1:{port}/healthz" in banner
        assert "[sms to sam of alex-and-sam] Hi Sam" in banner
        assert "+4915112340002" not in banner  # phone numbers never reach the console log
        redis_pid = int((tmp_path / "var" / "redis" / "redis.pid").read_text())
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=60)
        log.close()
    assert code == 0
    assert not _alive(redis_pid), "the embedded Redis outlived `hearth run`"
    children = subprocess.run(
        ["pgrep", "-f", str(tmp_path)], capture_output=True, text=True, check=False
    ).stdout.split()
    assert [pid for pid in children if _alive(int(pid))] == []


def test_run_on_its_own_port_is_found_by_reply_feed_urls_and_fire(tmp_path: Path) -> None:
    """No HEARTH_PUBLIC_URL: `hearth run --port` says where it serves in run.json, and the
    other commands find it there; a fire to an opted-out partner says why it was not sent."""
    config = tmp_path / "couples"
    shutil.copytree(ROOT / "config" / "couples", config)
    port = _free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HEARTH_") and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env |= {"HEARTH_DATA_DIR": str(tmp_path / "var"), "HEARTH_CONFIG_DIR": str(config),
            "HEARTH_CLOCK_OFFSET_S": repr(daytime_offset_s())}  # fmt: skip
    run_file = tmp_path / "var" / "run.json"
    log = (tmp_path / "run.log").open("w")
    run = subprocess.Popen(
        [str(HEARTH), "run", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )

    def hearth(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(HEARTH), *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    try:
        _wait(lambda: run_file.exists() and _healthy(port), 60, "/healthz and run.json")
        recorded = json.loads(run_file.read_text())
        assert recorded["pid"] == run.pid
        assert recorded["web_url"] == f"http://127.0.0.1:{port}"
        assert recorded["redis_url"].startswith("unix://")
        assert set(recorded["children"]) == {"redis", "scheduler", "worker", "web"}

        urls = hearth("feed", "urls", "alex-and-sam")
        assert urls.returncode == 0, urls.stderr
        label, url = urls.stdout.splitlines()[1].split()
        assert label == "http:"  # what it is: no "https" on a plain-HTTP local run
        assert url.startswith(f"http://127.0.0.1:{port}/feeds/")
        assert httpx.get(url, timeout=10).status_code == 200

        stopped = hearth("reply", "--from", "+4915112340002", "STOP")
        assert stopped.returncode == 0, stopped.stderr
        assert "unsubscribed" in stopped.stdout

        fired = hearth("fire", "alex-and-sam", "check_in", "--wait", "30")
        assert fired.returncode == 1, fired.stdout + fired.stderr
        outcomes = fired.stdout.splitlines()[2:]
        assert outcomes == ["sent to Alex", "not sent to Sam: the partner opted out"]
    finally:
        run.send_signal(signal.SIGTERM)
        code = run.wait(timeout=60)
        log.close()
    assert code == 0
    assert not run_file.exists(), "a clean stop removes run.json"


def _feed_commands(env: dict[str, str], port: int) -> None:
    """`hearth feed urls` gives a URL the running service serves; export prints its bytes;
    rotate makes it 404."""
    urls = subprocess.run(
        [str(HEARTH), "feed", "urls", "alex-and-sam"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert urls.returncode == 0, urls.stderr
    lines = urls.stdout.splitlines()
    assert lines[0] == "alex-and-sam Alex"
    https = lines[1].split()[-1]
    assert https.startswith(f"http://127.0.0.1:{port}/feeds/")
    assert lines[2].split()[-1] == "webcal://" + https.split("://", 1)[1]
    assert lines[3].split()[-1].startswith("https://calendar.google.com/calendar/r?cid=webcal")
    served = httpx.get(https, timeout=10)
    assert served.status_code == 200
    assert served.headers["content-type"] == "text/calendar; charset=utf-8"
    exported = subprocess.run(
        [str(HEARTH), "feed", "export", "alex-and-sam", "--partner", "Alex"],
        env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout == served.content
    rotated = subprocess.run(
        [str(HEARTH), "feed", "rotate", "alex-and-sam", "Alex"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert rotated.returncode == 0, rotated.stderr
    assert httpx.get(https, timeout=10).status_code == 404
    new = rotated.stdout.splitlines()[1].split()[-1]
    assert httpx.get(new, timeout=10).status_code == 200
    # Every partner's URL at once, as after a leaked secret or database.
    before = _feed_urls(env)
    every = subprocess.run(
        [str(HEARTH), "feed", "rotate", "--all"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert every.returncode == 0, every.stderr
    assert every.stdout.startswith("rotated ")
    after = _feed_urls(env)
    assert new in before
    assert len(after) == len(before) >= 6  # both partners of the three example couples
    assert set(after).isdisjoint(before)
    assert {httpx.get(u, timeout=10).status_code for u in before} == {404}
    assert {httpx.get(u, timeout=10).status_code for u in after} == {200}


def _feed_urls(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(
        [str(HEARTH), "feed", "urls"], env=env, capture_output=True, text=True, timeout=60,
        check=True,
    )  # fmt: skip
    return [line.split()[-1] for line in listed.stdout.splitlines() if "/feeds/" in line
            and not line.lstrip().startswith(("webcal", "google"))]  # fmt: skip


def test_fire_names_what_is_unknown(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env |= {
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
        "HEARTH_CONFIG_DIR": str(ROOT / "config/couples"),
    }
    for args, needle in (
        (["nobody", "check_in"], "no couple 'nobody'"),
        (["alex-and-sam", "yoga"], "has no ritual 'yoga'"),
        (["alex-and-sam", "check_in", "--partner", "Kim"], "has no partner 'Kim'"),
        (["alex-and-sam", "check_in"], "start `hearth run` first"),
    ):
        result = subprocess.run(
            [str(HEARTH), "fire", *args], env=env, capture_output=True, text=True, timeout=60,
            check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert needle in result.stderr


def _healthy(port: int) -> bool:
    try:
        reply = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.HTTPError:
        return False
    return reply.status_code == 200 and reply.json() == {
        "status": "ok",
        "redis": "ok",
        "database": "ok",
    }
