"""What the ``dramatiq`` command imports: the broker from settings, the actors, their wiring.

``hearth worker`` runs ``dramatiq workers.main``; every worker process imports this module.
"""

from __future__ import annotations

import multiprocessing

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from redis import Redis

from service import lifeline
from service.runtime import (
    build_feed_publisher,
    build_reply_handler,
    build_send_path,
    build_weekly_summaries,
    redis_url,
    refreshing_couples,
)
from service.settings import load_settings
from service.storage import make_engine
from service.system_clock import SystemClock
from workers import feeds, prompts, replies, weeks

# A worker process stops when the `dramatiq` process that forked it dies, even by SIGKILL:
# that process watches its workers, but nothing makes a worker watch it, and an orphaned
# worker would go on taking messages. (Its SIGTERM handler finishes the current messages.)
if (_parent := multiprocessing.parent_process()) is not None and _parent.pid is not None:
    lifeline.hold(_parent.pid)

settings = load_settings()
url = redis_url(settings)
# A crashed worker's unacknowledged messages come back once its heartbeat is this old and a
# maintenance pass runs; Dramatiq's defaults (60 s, 0.1 % of commands) often take 10-20 min.
broker = RedisBroker(  # type: ignore[no-untyped-call]
    url=url, heartbeat_timeout=30_000, maintenance_chance=20_000
)
dramatiq.set_broker(broker)
send_prompt = prompts.declare(broker)
reply_received = replies.declare(broker)
render_feed = feeds.declare(broker)
week_ended = weeks.declare(broker)
# One loaded config and one connection pool for every actor of this process.
redis = Redis.from_url(url)
engine = make_engine(settings.log_url)
couples = refreshing_couples(settings)
clock = SystemClock()
prompts.use(build_send_path(settings, clock, engine, couples))
replies.use(build_reply_handler(settings, clock, redis, engine, broker, couples))
feeds.use(build_feed_publisher(settings, clock, redis, engine, couples))
weeks.use(build_weekly_summaries(settings, clock, engine, couples))
