"""``python -m workers ARGS``: Dramatiq's command line with Hearth's log lines.

Dramatiq's main process (the one that forks the workers and relays their output) logs in
its own format; this sets up ``service/logs.py`` first, so ``logging.basicConfig`` in
Dramatiq finds the root logger configured and leaves it alone, and every line of
``hearth worker`` has one shape. Each worker process configures its own again on import
of ``workers.main``, on the pipe Dramatiq gives it.
"""

from __future__ import annotations

import sys

from dramatiq.cli import main

from service import logs
from service.settings import load_settings

if __name__ == "__main__":
    logs.configure(load_settings().log_format, process="worker")
    sys.exit(main())  # type: ignore[no-untyped-call]
