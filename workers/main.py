"""What the ``dramatiq`` command imports: the broker from settings, the actors, the send path.

``hearth worker`` runs ``dramatiq workers.main``; every worker process imports this module.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from service.runtime import build_send_path, redis_url
from service.settings import load_settings
from service.system_clock import SystemClock
from workers import prompts

settings = load_settings()
# A crashed worker's unacknowledged messages come back once its heartbeat is this old and a
# maintenance pass runs; Dramatiq's defaults (60 s, 0.1 % of commands) often take 10-20 min.
broker = RedisBroker(  # type: ignore[no-untyped-call]
    url=redis_url(settings), heartbeat_timeout=30_000, maintenance_chance=20_000
)
dramatiq.set_broker(broker)
send_prompt = prompts.declare(broker)
prompts.use(build_send_path(settings, SystemClock()))
