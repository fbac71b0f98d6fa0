"""Where a running ``hearth run`` serves: ``<data dir>/run.json``, for commands that talk to it.

``hearth run`` writes it once its children are up, again whenever one is restarted, and
removes it when it stops::

    {"pid": 4242, "web_url": "http://127.0.0.1:8123", "redis_url": "unix:///…/redis.sock",
     "children": {"scheduler": 4250, "worker": 4251, "web": 4252, "redis": 4249}}

A file whose pid no longer runs a Hearth (``hearth run`` was killed) is stale and ignored.
``hearth reply`` and ``hearth feed`` read it, so ``hearth run --port 8123`` is reached without
HEARTH_PUBLIC_URL; a HEARTH_PUBLIC_URL given explicitly still wins for what is signed and
published (it is what the world sees), while ``hearth reply`` still posts to the local URL.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from service import processes

if TYPE_CHECKING:
    from pathlib import Path

    from service.settings import Settings

__all__ = ["RUN_FILE", "RunningHearth", "find", "forget", "local_settings", "record", "web_url"]

RUN_FILE = "run.json"


@dataclass(frozen=True, slots=True)
class RunningHearth:
    pid: int  # the ``hearth run`` process
    web_url: str  # where its web app listens, as reached from this machine
    redis_url: str
    children: Mapping[str, int] = field(default_factory=dict)  # name -> pid, as now running


def web_url(host: str, port: int) -> str:
    """The URL that reaches a server listening on ``host``:``port`` from this machine."""
    # A wildcard address listens everywhere; loopback is where this machine reaches it.
    reach = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://[{reach}]:{port}" if ":" in reach else f"http://{reach}:{port}"


def record(data_dir: Path, running: RunningHearth) -> None:
    """Write (or replace, atomically) the data dir's run file."""
    path = data_dir / RUN_FILE
    partial = path.with_suffix(".json.tmp")
    text = json.dumps(
        {
            "pid": running.pid,
            "web_url": running.web_url,
            "redis_url": running.redis_url,
            "children": dict(running.children),
        },
        indent=2,
    )
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    os.replace(partial, path)


def find(data_dir: Path) -> RunningHearth | None:
    """The Hearth running on ``data_dir``, or None (no run file, unreadable, or stale)."""
    try:
        data = json.loads((data_dir / RUN_FILE).read_text(encoding="utf-8"))
        running = RunningHearth(
            pid=int(data["pid"]),
            web_url=str(data["web_url"]),
            redis_url=str(data["redis_url"]),
            children={str(k): int(v) for k, v in dict(data.get("children", {})).items()},
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    return running if _runs_hearth(running.pid) else None


def forget(data_dir: Path, pid: int) -> None:
    """Remove the run file if it is ``pid``'s (a newer ``hearth run`` may have replaced it)."""
    found = find(data_dir)
    if found is None or found.pid == pid:
        (data_dir / RUN_FILE).unlink(missing_ok=True)


def local_settings(settings: Settings) -> tuple[Settings, RunningHearth | None]:
    """``settings`` as the running Hearth on their data dir sees them, and that Hearth.

    Unless HEARTH_PUBLIC_URL was given, the public URL is the running web app's, which is
    what ``hearth run`` gave its children: so signatures and feed URLs match what it serves.
    """
    running = find(settings.data_dir)
    if running is None or "public_url" in settings.model_fields_set:
        return settings, running
    return settings.model_copy(update={"public_url": running.web_url}), running


def _runs_hearth(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if not processes.alive(pid):
        return False
    args = processes.command_line(pid)
    # A pid reused by another program after a crash is not a Hearth (unknown: assume it is).
    return args is None or any("hearth" in a or "service.cli" in a for a in args)
