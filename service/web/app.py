"""The FastAPI app: ``/healthz`` (200 when Redis and the log database answer: liveness),
``/readyz`` (``service/web/readiness.py``), ``/metrics`` (``service/web/metrics.py``), the
SMS webhook (``service/web/sms.py``), calendar feeds (``service/web/feeds.py``) and
partners' dashboards (``service/web/dashboard.py``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from service.inbound import enqueue_feed_render, webhook_token
from service.probes import Probes
from service.runtime import Runtime
from service.storage import FeedTokens, ReplyLog
from service.storage.tallies import Tallies
from service.web.dashboard import DASHBOARD_OPENAPI, dashboard_route
from service.web.feeds import FEED_OPENAPI, feed_route
from service.web.logs import install as install_log_filters
from service.web.metrics import HearthCollector, Requests, metrics_route
from service.web.readiness import ConfigWatch, readiness
from service.web.sms import sms_router

if TYPE_CHECKING:
    from service.domain.clock import Clock
    from service.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings, redis_url: str, clock: Clock | None = None) -> FastAPI:
    """The app for ``settings``; ``redis_url`` is the Redis the rest of the service uses."""
    runtime = Runtime(settings, clock=clock, redis_url=redis_url)
    redis, engine, broker = runtime.redis, runtime.engine, runtime.broker

    feeds_redis = AsyncRedis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        install_log_filters()  # after uvicorn configured its loggers
        yield
        await feeds_redis.aclose()
        runtime.close()

    app = FastAPI(title="Hearth", version="0.1.0", lifespan=lifespan)
    registry = CollectorRegistry()
    feed_requests = Requests(
        registry,
        "hearth_feed_requests",
        "Calendar feed requests by HTTP status (304: not modified).",
    )
    dashboard_requests = Requests(
        registry, "hearth_dashboard_requests", "Dashboard requests (/c/<token>) by HTTP status."
    )
    probes = Probes(redis)
    config = ConfigWatch(runtime.live_config())
    registry.register(
        HearthCollector(
            Tallies(engine), probes, runtime.clock.now, lambda: len(config.failing()), registry
        )
    )
    app.router.routes.append(
        feed_route(
            feeds_redis,
            FeedTokens(engine),
            lambda c: enqueue_feed_render(broker, c),
            feed_requests.count,
        )
    )
    app.router.routes.append(metrics_route(registry))
    app.router.routes.append(dashboard_route(runtime.dashboard_pages(), dashboard_requests.count))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema["paths"].update(FEED_OPENAPI)
            schema["paths"].update(DASHBOARD_OPENAPI)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(
        sms_router(
            ReplyLog(engine, runtime.cipher),
            broker,
            runtime.clock,
            webhook_token(settings),
            settings.public_url,
            runtime.receipts(),
        )
    )

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        checks = {"redis": _redis_state(redis), "database": _database_state(engine)}
        healthy = all(state == "ok" for state in checks.values())
        return JSONResponse(
            {"status": "ok" if healthy else "unavailable", **checks},
            status_code=200 if healthy else 503,
        )

    @app.get(
        "/readyz",
        responses={
            200: {"description": "Ready: Redis, the database, a scheduler and a worker."},
            503: {"description": "Not ready; `not_ready` names the parts that fail."},
        },
    )
    def readyz() -> JSONResponse:
        ready, body = readiness(
            redis=lambda: _redis_state(redis),
            database=lambda: _database_state(engine),
            probes=probes,
            now=runtime.clock.now(),
            config=config,
        )
        return JSONResponse(body, status_code=200 if ready else 503)

    return app


def _redis_state(redis: Redis) -> str:
    try:
        redis.ping()
    except RedisError as e:
        return f"unavailable: {type(e).__name__}"
    return "ok"


def _database_state(engine: Engine) -> str:
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as e:
        return f"unavailable: {type(e).__name__}"
    return "ok"
