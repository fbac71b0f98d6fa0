"""``GET /readyz``: whether this service can do its work now, each part named.

Ready (200) when all of these hold; otherwise 503 with the same JSON body, whose
``not_ready`` lists the parts that fail:

- ``redis``: answers a PING;
- ``database``: answers ``SELECT 1``;
- ``scheduler``: a scheduler finished a pass within ``SCHEDULER_STALE_AFTER`` (30 s) by the
  service's clock; its loop passes at least every 2 s, so 30 s is fifteen missed passes;
- ``workers``: at least one Dramatiq worker process with a heartbeat within Dramatiq's
  heartbeat timeout (30 s, ``runtime.HEARTBEAT_TIMEOUT_MS``).

``config_files_failing`` names the couple files whose current text does not load. They do
not make the service unready: every other couple runs, and a broken file's couple runs on
its last good version; a load balancer that took the web app out of rotation for one typo
would stop every webhook. ``/healthz`` stays the cheap liveness check (Redis and database).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

from redis.exceptions import RedisError

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from service.config.live import LiveConfig
    from service.probes import Probes

__all__ = ["SCHEDULER_STALE_AFTER", "ConfigWatch", "readiness"]

SCHEDULER_STALE_AFTER = timedelta(seconds=30)


class ConfigWatch:
    """The config directory as this process sees it, re-read at most every ``every_s``
    (a stat per file; only changed files are loaded), for the failing files' names."""

    def __init__(self, live: LiveConfig, every_s: float = 2.0) -> None:
        self._live = live
        self._every_s = every_s
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def failing(self) -> list[str]:
        with self._lock:
            if time.monotonic() - self._checked >= self._every_s:
                self._live.refresh()
                self._checked = time.monotonic()
            return sorted(path.name for path in self._live.failing)


def readiness(
    *,
    redis: Callable[[], str],
    database: Callable[[], str],
    probes: Probes,
    now: datetime,
    config: ConfigWatch,
) -> tuple[bool, dict[str, object]]:
    """(ready, the body): each check is ``ok`` or says what is wrong."""
    checks: dict[str, str] = {"redis": redis(), "database": database()}
    if checks["redis"] == "ok":
        checks["scheduler"] = _scheduler(probes, now)
        checks["workers"] = _workers(probes)
    else:
        checks["scheduler"] = checks["workers"] = "unknown: Redis is unavailable"
    not_ready = [name for name, state in checks.items() if state != "ok"]
    body: dict[str, object] = {
        "status": "ready" if not not_ready else "not ready",
        **checks,
        "not_ready": not_ready,
        "config_files_failing": config.failing(),
    }
    return not not_ready, body


def _scheduler(probes: Probes, now: datetime) -> str:
    try:
        age_s = probes.scheduler_heartbeat_age_s(now)
    except RedisError as e:
        return f"unknown: {type(e).__name__}"
    if age_s is None:
        return "no scheduler has run"
    if age_s > SCHEDULER_STALE_AFTER.total_seconds():
        return f"stale: last pass {age_s:.0f} s ago"
    return "ok"


def _workers(probes: Probes) -> str:
    try:
        live = probes.live_consumers()
    except RedisError as e:
        return f"unknown: {type(e).__name__}"
    return "ok" if live else "no live worker"
