"""/readyz's checks and the probes behind them and /metrics, against a real Redis."""

from __future__ import annotations

import time
from pathlib import Path

from redis import Redis

from service.config.live import LiveConfig
from service.probes import WORKER_HEARTBEATS, Probes
from service.scheduler.process import HEARTBEAT_KEY
from service.scheduler.store import ScheduledEvent, ScheduleStore
from service.web.readiness import ConfigWatch, readiness
from tests.couple_texts import VALID
from tests.domain.builders import utc

NOW = utc(2026, 3, 2, 12)


def _ms(seconds_ago: float) -> int:
    return int((NOW.timestamp() - seconds_ago) * 1000)


def _watch(tmp_path: Path, broken: bool = False) -> ConfigWatch:
    config = tmp_path / "couples"
    config.mkdir(exist_ok=True)
    (config / "good.yaml").write_text(VALID, encoding="utf-8")
    if broken:
        (config / "bad.yaml").write_text("couple: [\n", encoding="utf-8")
    return ConfigWatch(LiveConfig(config))


def _check(redis: Redis, watch: ConfigWatch) -> tuple[bool, dict[str, object]]:
    return readiness(
        redis=lambda: "ok", database=lambda: "ok", probes=Probes(redis), now=NOW, config=watch
    )


def test_ready_with_a_fresh_scheduler_heartbeat_and_a_live_worker(
    redis_client: Redis, tmp_path: Path
) -> None:
    redis_client.set(HEARTBEAT_KEY, _ms(5))
    redis_client.zadd(WORKER_HEARTBEATS, {"consumer-1": int(time.time() * 1000)})
    ready, body = _check(redis_client, _watch(tmp_path))
    assert ready
    assert body["not_ready"] == []
    assert body["config_files_failing"] == []


def test_a_stale_heartbeat_and_a_dead_worker_are_named(redis_client: Redis, tmp_path: Path) -> None:
    redis_client.set(HEARTBEAT_KEY, _ms(45))
    redis_client.zadd(WORKER_HEARTBEATS, {"consumer-1": int(time.time() * 1000) - 60_000})
    ready, body = _check(redis_client, _watch(tmp_path))
    assert not ready
    assert body["not_ready"] == ["scheduler", "workers"]
    assert body["scheduler"] == "stale: last pass 45 s ago"
    assert body["workers"] == "no live worker"


def test_a_broken_couple_file_is_listed_without_making_the_service_unready(
    redis_client: Redis, tmp_path: Path
) -> None:
    redis_client.set(HEARTBEAT_KEY, _ms(1))
    redis_client.zadd(WORKER_HEARTBEATS, {"consumer-1": int(time.time() * 1000)})
    ready, body = _check(redis_client, _watch(tmp_path, broken=True))
    assert ready
    assert body["config_files_failing"] == ["bad.yaml"]


def test_redis_down_makes_the_redis_checks_unknown(redis_client: Redis, tmp_path: Path) -> None:
    ready, body = readiness(
        redis=lambda: "unavailable: ConnectionError", database=lambda: "ok",
        probes=Probes(redis_client), now=NOW, config=_watch(tmp_path),
    )  # fmt: skip
    assert not ready
    assert body["not_ready"] == ["redis", "scheduler", "workers"]


def test_lag_is_now_minus_the_oldest_unclaimed_due_event(redis_client: Redis) -> None:
    probes = Probes(redis_client)
    assert probes.scheduler_lag_s(NOW) == 0
    store = ScheduleStore(redis_client, queue="prompts")
    events = [
        ScheduledEvent(f"c/r/{i}", "c", utc(2026, 3, 2, 11, 59, s), NOW.replace(hour=14),
                       "send_prompt", {})
        for i, s in enumerate((30, 50))
    ]  # fmt: skip
    store.add(events)
    assert probes.scheduler_lag_s(NOW) == 30
    store.claim_due(NOW)
    assert probes.scheduler_lag_s(NOW) == 0
    (prompts, _) = probes.queues()
    assert (prompts.queue, prompts.ready, prompts.delayed, prompts.dead) == ("prompts", 2, 0, 0)
