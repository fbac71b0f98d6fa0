"""run.json: where a running `hearth run` serves, and when the file is stale."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from service import running
from service.settings import load_settings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HEARTH_PUBLIC_URL", raising=False)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)  # no stray .env


@pytest.fixture
def hearth_pid() -> Iterator[int]:
    """A live process whose command line names hearth, as `hearth run`'s does."""
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "hearth"]) as p:
        try:
            yield p.pid
        finally:
            p.kill()


def _here(pid: int) -> running.RunningHearth:
    return running.RunningHearth(pid, "http://127.0.0.1:8123", "unix:///x/redis.sock", {"web": 7})


def test_a_recorded_live_hearth_is_found_and_forgotten(tmp_path: Path, hearth_pid: int) -> None:
    here = _here(hearth_pid)
    running.record(tmp_path, here)

    assert running.find(tmp_path) == here
    assert (tmp_path / "run.json").stat().st_mode & 0o777 == 0o600
    running.forget(tmp_path, here.pid)
    assert not (tmp_path / "run.json").exists()


def test_a_run_file_whose_pid_is_gone_or_not_hearth_or_garbled_is_ignored(tmp_path: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running.record(tmp_path, _here(gone.pid))
    assert running.find(tmp_path) is None

    with subprocess.Popen(["sleep", "30"]) as other:  # alive, but not a Hearth
        try:
            running.record(tmp_path, _here(other.pid))
            assert running.find(tmp_path) is None
        finally:
            other.kill()

    (tmp_path / "run.json").write_text("{not json")
    assert running.find(tmp_path) is None
    (tmp_path / "run.json").write_text(json.dumps({"pid": "x"}))
    assert running.find(tmp_path) is None


def test_local_settings_take_the_running_url_unless_hearth_public_url_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hearth_pid: int
) -> None:
    running.record(tmp_path, _here(hearth_pid))

    settings, found = running.local_settings(load_settings())
    assert found is not None
    assert settings.public_url == "http://127.0.0.1:8123"

    monkeypatch.setenv("HEARTH_PUBLIC_URL", "https://hearth.example")
    settings, found = running.local_settings(load_settings())
    assert found is not None
    assert settings.public_url == "https://hearth.example"


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("hearth.lan", "http://hearth.lan:8000"),
    ],
)
def test_web_url_is_where_this_machine_reaches_the_server(host: str, url: str) -> None:
    assert running.web_url(host, 8000) == url
