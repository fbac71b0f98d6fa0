"""``GET /metrics``: Prometheus's text format, computed when scraped.

The web process serves the metrics of the whole service, so what other processes did is
read from where they leave it rather than counted in their memory: sends, replies and
delivery receipts from the log (``service/storage/tallies.py``), the scheduler and the
queues from Redis (``service/probes.py``). Only feed and dashboard requests are counted
here, in the process that serves them. One registry per app (not prometheus-client's
global one), so two apps in one process (tests) never clash.

Names (gauges unless ``_total``):

    hearth_sends{state, kind}             sends in the log by state and purpose kind
    hearth_replies{verb}                  replies by command
    hearth_deliveries{status}             sends by their latest delivery receipt's status
    hearth_scheduler_lag_seconds          now minus the oldest due event not yet claimed
    hearth_scheduler_heartbeat_age_seconds  since the scheduler's last pass (absent: never)
    hearth_queue_messages{queue, state}   Dramatiq's queues: ready, delayed, dead
    hearth_worker_consumers               Dramatiq consumers with a fresh heartbeat: each
                                          worker process has one per queue it serves,
                                          delay queues included (up to 4 for `hearth worker`)
    hearth_config_files_failing           couple files whose current text does not load
    hearth_feed_requests_total{status}    feed requests served by this process, by status
                                          (200, 304, 404, 503)
    hearth_dashboard_requests_total{status}  dashboard requests (/c/<token>), by status
    hearth_metrics_errors_total{source}   scrapes where Redis or the database did not answer
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.probes import Probes
from service.storage import StorageError
from service.storage.tallies import Tallies

if TYPE_CHECKING:
    from datetime import datetime

__all__ = ["HearthCollector", "Requests", "metrics_route"]

log = logging.getLogger("hearth.web.metrics")


class Requests:
    """A route's counter in this process: one increment per answer, by status code."""

    def __init__(self, registry: CollectorRegistry, name: str, documentation: str) -> None:
        self._counter = Counter(name, documentation, ["status"], registry=registry)

    def count(self, status: int) -> None:
        self._counter.labels(str(status)).inc()


class HearthCollector(Collector):
    """The service's state, read from the log and Redis at each scrape."""

    def __init__(
        self,
        tallies: Tallies,
        probes: Probes,
        clock: Callable[[], datetime],
        failing_files: Callable[[], int],
        registry: CollectorRegistry,
    ) -> None:
        self._tallies = tallies
        self._probes = probes
        self._now = clock
        self._failing_files = failing_files
        self._errors = Counter(
            "hearth_metrics_errors",
            "Scrapes in which a source did not answer (its metrics were left out).",
            ["source"],
            registry=registry,
        )

    def collect(self) -> Iterable[Metric]:
        try:
            yield from self._from_log()
        except StorageError as e:
            log.warning("metrics: the database did not answer: %s", type(e).__name__)
            self._errors.labels("database").inc()
        try:
            yield from self._from_redis()
        except RedisError as e:
            log.warning("metrics: Redis did not answer: %s", type(e).__name__)
            self._errors.labels("redis").inc()
        failing = GaugeMetricFamily(
            "hearth_config_files_failing", "Couple files whose current text does not load."
        )
        failing.add_metric([], self._failing_files())
        yield failing

    def _from_log(self) -> Iterator[Metric]:
        sends = GaugeMetricFamily(
            "hearth_sends",
            "Sends in the log by state (pending, sent, failed, missed, unknown) and purpose "
            "kind (prompt, reminder, snooze, fire, summary, reveal, confirmation).",
            labels=["state", "kind"],
        )
        for (state, kind), n in sorted(self._tallies.sends().items()):
            sends.add_metric([state, kind], n)
        replies = GaugeMetricFamily(
            "hearth_replies", "Replies by command (none: not yet parsed).", labels=["verb"]
        )
        for verb, n in sorted(self._tallies.replies().items()):
            replies.add_metric([verb], n)
        deliveries = GaugeMetricFamily(
            "hearth_deliveries",
            "Sends by the status of their latest delivery receipt.",
            labels=["status"],
        )
        for status, n in sorted(self._tallies.deliveries().items()):
            deliveries.add_metric([status], n)
        yield from (sends, replies, deliveries)

    def _from_redis(self) -> Iterator[Metric]:
        now = self._now()
        lag = GaugeMetricFamily(
            "hearth_scheduler_lag_seconds",
            "Now minus the fire instant of the oldest due event not yet claimed.",
        )
        lag.add_metric([], self._probes.scheduler_lag_s(now))
        yield lag
        age = self._probes.scheduler_heartbeat_age_s(now)
        if age is not None:
            beat = GaugeMetricFamily(
                "hearth_scheduler_heartbeat_age_seconds",
                "Seconds since a scheduler last finished a pass.",
            )
            beat.add_metric([], age)
            yield beat
        queues = GaugeMetricFamily(
            "hearth_queue_messages",
            "Messages in Dramatiq's queues: ready, delayed (retries, held texts), dead.",
            labels=["queue", "state"],
        )
        for depth in self._probes.queues():
            queues.add_metric([depth.queue, "ready"], depth.ready)
            queues.add_metric([depth.queue, "delayed"], depth.delayed)
            queues.add_metric([depth.queue, "dead"], depth.dead)
        yield queues
        workers = GaugeMetricFamily(
            "hearth_worker_consumers",
            "Dramatiq queue consumers with a fresh heartbeat (per worker process, one per "
            "queue and delay queue it serves).",
        )
        workers.add_metric([], self._probes.live_consumers())
        yield workers


def metrics_route(registry: CollectorRegistry) -> Route:
    async def metrics(request: Request) -> Response:
        # The collectors do blocking I/O (SQL, Redis): off the event loop.
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"], name="metrics")
