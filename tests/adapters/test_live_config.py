"""The live config directory: edits without restart, bad edits keep the last good version."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from redis import Redis

from service.config.live import LiveConfig
from service.config.shared import RedisLastGood
from tests.couple_texts import VALID


def _write(path: Path, text: str, bump: int = 0) -> None:
    path.write_text(text)
    st = path.stat()
    # Editors can write twice within one mtime tick; move it on so the change is seen.
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump * 1_000_000_000))


def test_first_refresh_loads_every_good_file(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", VALID)
    _write(tmp_path / "b.yaml", VALID)
    live = LiveConfig(tmp_path)
    result = live.refresh()
    assert result.changed == ["a", "b"]
    assert set(live.couples) == {"a", "b"}


def test_unchanged_files_are_not_reloaded(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", VALID)
    live = LiveConfig(tmp_path)
    live.refresh()
    first = live.get("a")
    result = live.refresh()
    assert not result.any
    assert live.get("a") is first


def test_edit_is_picked_up_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    _write(path, VALID)
    live = LiveConfig(tmp_path)
    live.refresh()
    _write(path, VALID.replace("every day at 21:00", "every day at 20:00"), bump=1)
    result = live.refresh()
    couple = live.get("a")
    assert result.changed == ["a"]
    assert couple is not None
    assert couple.ritual("check_in").recurrence.text == "every day at 20:00"


def test_broken_edit_keeps_the_last_good_version_and_logs_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "a.yaml"
    _write(path, VALID)
    live = LiveConfig(tmp_path)
    live.refresh()
    good = live.get("a")
    _write(path, VALID.replace("every day at 21:00", "every othr day at 21:00"), bump=1)
    with caplog.at_level(logging.ERROR, logger="hearth.config"):
        result = live.refresh()
    assert live.get("a") is good
    assert not result.any
    assert len(result.failures) == 1
    assert f"{path}:9:5: rituals[0].schedule" in caplog.text
    assert "keeping the last good version of 'a'" in caplog.text
    _write(path, VALID.replace("every day at 21:00", "every day at 22:00"), bump=2)
    assert live.refresh().changed == ["a"]


def test_removed_file_removes_its_couple_and_a_new_bad_file_loads_nothing(tmp_path: Path) -> None:
    _write(tmp_path / "a.yaml", VALID)
    live = LiveConfig(tmp_path)
    live.refresh()
    (tmp_path / "a.yaml").unlink()
    _write(tmp_path / "b.yaml", "timezone: Nowhere/Land\n")
    result = live.refresh()
    assert result.removed == ["a"]
    assert live.couples == {}
    assert len(result.failures) == 1


def test_missing_directory_keeps_what_is_loaded(tmp_path: Path) -> None:
    directory = tmp_path / "couples"
    directory.mkdir()
    _write(directory / "a.yaml", VALID)
    live = LiveConfig(directory)
    live.refresh()
    (directory / "a.yaml").unlink()
    directory.rmdir()
    assert not live.refresh().any
    assert set(live.couples) == {"a"}


def test_a_process_started_while_a_file_is_broken_runs_the_shared_last_good_version(
    tmp_path: Path, redis_client: Redis
) -> None:
    _write(tmp_path / "a.yaml", VALID)
    scheduler = LiveConfig(tmp_path, RedisLastGood(redis_client))
    scheduler.refresh()
    good = scheduler.get("a")
    assert good is not None
    _write(tmp_path / "a.yaml", VALID.replace("at 21:00", "at 25:00"), 1)
    # A worker that starts now has never seen the good version itself.
    worker = LiveConfig(tmp_path, RedisLastGood(redis_client))
    result = worker.refresh()
    assert worker.get("a") == good
    assert [f.issues[0].path for f in result.failures] == ["rituals[0].schedule"]
    # Without the shared versions it would run nothing for this couple.
    alone = LiveConfig(tmp_path)
    alone.refresh()
    assert alone.get("a") is None
    # A mend is shared too; a removed file takes its last good version with it.
    mended = VALID.replace("at 21:00", "at 20:30")
    _write(tmp_path / "a.yaml", mended, 2)
    scheduler.refresh()
    assert RedisLastGood(redis_client).load("a.yaml") == mended
    (tmp_path / "a.yaml").unlink()
    scheduler.refresh()
    assert RedisLastGood(redis_client).load("a.yaml") is None


def test_the_config_goes_on_when_redis_is_away(tmp_path: Path, redis_client: Redis) -> None:
    _write(tmp_path / "a.yaml", VALID)
    away = Redis(unix_socket_path=str(tmp_path / "nobody.sock"), socket_connect_timeout=0.2)
    live = LiveConfig(tmp_path, RedisLastGood(away))
    assert live.refresh().changed == ["a"]
    assert live.get("a") is not None


def test_a_broken_file_read_while_redis_was_away_gets_its_shared_version_once_it_is_back(
    tmp_path: Path, redis_client: Redis
) -> None:
    from service.config.shared import SharedConfigUnavailable

    RedisLastGood(redis_client).save("a.yaml", VALID)  # what another process loaded
    _write(tmp_path / "a.yaml", VALID.replace("at 21:00", "at 25:00"))

    class Flaky(RedisLastGood):
        away = True

        def load(self, name: str) -> str | None:
            if self.away:
                raise SharedConfigUnavailable("Redis: connection refused")
            return super().load(name)

    shared = Flaky(redis_client)
    live = LiveConfig(tmp_path, shared)
    live.refresh()
    assert live.get("a") is None
    assert live.unreadable("a")
    shared.away = False
    assert live.refresh().changed == ["a"]  # the file did not change; Redis came back
    assert live.get("a") is not None
    assert not live.unreadable("a")
