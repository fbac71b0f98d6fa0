"""What the ``dramatiq`` command imports: the broker from settings, the actors, their wiring.

``hearth worker`` runs ``dramatiq workers.main``; every worker process imports this module
and builds its parts once through the composition root (``service.runtime.Runtime``): one
loaded config and one connection pool for every actor of the process.

Dramatiq has pointed this process's ``sys.stderr`` (and stdout) at a pipe to its main
process, and configured logging on it; Hearth's log pipeline replaces that handler with one
on the same pipe (``service/logs.py``), so a worker's lines are JSON or readable like every
other process's, numbers masked.
"""

from __future__ import annotations

import multiprocessing

import dramatiq

from service import lifeline
from service.runtime import Runtime, configure_logging
from service.settings import load_settings
from workers import feeds, prompts, replies, weeks

# A worker process stops when the `dramatiq` process that forked it dies, even by SIGKILL:
# that process watches its workers, but nothing makes a worker watch it, and an orphaned
# worker would go on taking messages. (Its SIGTERM handler finishes the current messages.)
if (_parent := multiprocessing.parent_process()) is not None and _parent.pid is not None:
    lifeline.hold(_parent.pid)

settings = load_settings()
configure_logging(settings, "worker")
runtime = Runtime(settings)
broker = runtime.broker
dramatiq.set_broker(broker)
send_prompt = prompts.declare(broker)
reply_received = replies.declare(broker)
render_feed = feeds.declare(broker)
week_ended = weeks.declare(broker)
prompts.use(runtime.send_path())
replies.use(runtime.reply_handler())
feeds.use(runtime.feed_publisher())
weeks.use(runtime.weekly_summaries())
