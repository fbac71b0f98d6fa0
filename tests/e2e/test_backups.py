"""`hearth backup` of a running service (prompts sent, a reply logged, feeds served),
`hearth restore` into a new data dir, and the service started on it with an empty Redis and
the clock where it was: every feed URL still serves, and no text that went out before the
backup goes out again.

The service is its real processes (`hearth web`, `hearth worker`, `hearth scheduler`), each
started once, and the commands are the real `hearth` (fire, feed urls, backup, restore); the
partner's reply is the signed webhook `hearth reply` would post. The prompts are fired, not
waited for: a start slower than a scheduled text's lead would plan past it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from datetime import time as time_of_day
from pathlib import Path

import httpx

from service.cli.reply import post_reply
from service.settings import Settings
from service.storage import migrate
from tests.faults.processes import (
    Fleet,
    RedisServer,
    clock_offset,
    couple_text,
    hearth_env,
    next_local,
)
from tests.waiting import outbox_lines, wait_for
from tests.web_server import free_port

HEARTH = Path(sys.executable).with_name("hearth")
SETTLE_S = 60.0  # a bound, never a measurement


def test_a_restored_service_serves_every_feed_and_sends_nothing_twice(
    tmp_path: Path, redis_server: RedisServer
) -> None:
    config = tmp_path / "couples"
    config.mkdir()
    rituals = [("check_in", "every day at 21:00"), ("date_night", "every friday at 19:30")]
    (config / "couple-000.yaml").write_text(couple_text(0, rituals))
    # Both runs share one shifted clock (20:30 in Berlin at the first start), as one
    # service's processes would: time goes on across the restore, it does not jump.
    offset = clock_offset(next_local(time_of_day(20, 30), datetime.now(UTC)), 0)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    archive = tmp_path / "backups" / "hearth.tar.gz"
    archive.parent.mkdir()

    def env(name: str, config: Path, redis_url: str) -> dict[str, str]:
        data = tmp_path / name
        return hearth_env(
            config=config, data=data, outbox=data / "outbox.jsonl", redis_url=redis_url,
            database_url=f"sqlite:///{data / 'hearth.sqlite3'}", offset_s=offset,
            HEARTH_PUBLIC_URL=base,
        )  # fmt: skip

    def hearth(run_env: dict[str, str], *args: str) -> str:
        return _end(_begin(tmp_path, run_env, *args))

    first = env("a", config, redis_server.url)
    migrate(first["DATABASE_URL"])  # as `hearth migrate` would, without another start-up
    with Fleet(_directory(tmp_path / "logs-a"), first) as fleet:
        fleet.start("web", [str(HEARTH), "web", "--port", str(port)])
        fleet.worker()
        # While the service starts: `fire` waits for its texts, `feed urls` publishes.
        firing = _begin(tmp_path, first, "fire", "couple-000", "check_in", "--wait", "30")
        listing = _begin(tmp_path, first, "feed", "urls")
        assert _end(firing).splitlines()[-2:] == ["sent to Alex", "sent to Sam"]
        urls = [line.split()[-1] for line in _end(listing).splitlines()
                if line.split()[0] == "http:"]  # fmt: skip
        assert len(urls) == 2
        wait_for(lambda: _status(f"{base}/healthz") == 200, SETTLE_S, "/healthz", detail=fleet.logs)
        outbox = tmp_path / "a" / "outbox.jsonl"
        _, status, _ = post_reply(_settings(first), "+491510000002", "DONE lovely chat")
        assert status == 200
        wait_for(lambda: len(outbox_lines(outbox)) == 3, SETTLE_S, "the confirmation")
        wait_for(lambda: all(_status(u) == 200 for u in urls), SETTLE_S, "the feeds to serve")
        said = hearth(first, "backup", str(archive))
        assert "the sqlite database" in said
        assert "outbox" in said
        before = Counter(json.loads(line)["event_id"] for line in outbox_lines(outbox))
        _kill(fleet)  # the old machine is gone; nothing of it is needed again
    assert len(before) == 3  # two prompts, a confirmation
    assert set(before.values()) == {1}

    with RedisServer() as empty:
        second = env("b", tmp_path / "restored-couples", empty.url)
        restored = hearth(second, "restore", str(archive))
        assert "2 data dir files" in restored  # the secrets: no run.json, no Redis files
        assert "1 config file into" in restored
        with Fleet(_directory(tmp_path / "logs-b"), second) as fleet:
            fleet.start("web", [str(HEARTH), "web", "--port", str(port)])
            fleet.worker()
            fleet.scheduler()
            # A scheduler planned from the empty Redis, and a worker consumes.
            ready = lambda: _status(f"{base}/readyz") == 200  # noqa: E731
            wait_for(ready, SETTLE_S, "/readyz", detail=fleet.logs)
            wait_for(lambda: all(_status(u) == 200 for u in urls), SETTLE_S, "the feeds again")
            for url in urls:
                assert httpx.get(url, timeout=10).text.startswith("BEGIN:VCALENDAR")
            assert fleet.died() == {}, fleet.logs()
            _kill(fleet)
    after = Counter(
        json.loads(line)["event_id"] for line in outbox_lines(tmp_path / "b" / "outbox.jsonl")
    )
    assert {e: n for e, n in after.items() if n > 1} == {}, "sent twice"
    assert set(after) == set(before)


def _begin(cwd: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(HEARTH), *args], env=env, cwd=cwd, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _end(process: subprocess.Popen[str]) -> str:
    """What the command printed; it must have succeeded."""
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, f"{' '.join(map(str, process.args))}: {out}{err}"  # type: ignore[arg-type]
    return out


def _kill(fleet: Fleet) -> None:
    for name in fleet.running():
        fleet.kill(name)


def _settings(env: dict[str, str]) -> Settings:
    names = ("HEARTH_DATA_DIR", "HEARTH_CONFIG_DIR", "HEARTH_PUBLIC_URL", "REDIS_URL")
    return Settings(**{name: env[name] for name in names})  # type: ignore[arg-type]


def _directory(path: Path) -> Path:
    path.mkdir()
    return path


def _status(url: str) -> int:
    try:
        return httpx.get(url, timeout=5).status_code
    except httpx.HTTPError:
        return 0
