"""Access logs without secrets: a feed's or a dashboard's URL is a capability, so no path
under ``/feeds/`` or ``/c/`` reaches a log, whatever follows it (``service/redaction.py``).

Hearth's own log pipeline (``service/logs.py``) scrubs every line already; this filter does
the same on uvicorn's access logger itself, so a process whose logging someone else set up
(an embedding server, a test) redacts too.
"""

from __future__ import annotations

import logging

from service.redaction import redact_capability_paths, scrub

__all__ = ["RedactFeedTokens", "install", "redact"]


class RedactFeedTokens(logging.Filter):
    """Rewrites capability paths (and numbers) in a record's message and args."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = scrub(record.msg)
        return True


def redact(text: str) -> str:
    """``text`` with every path under ``/feeds/`` and ``/c/`` replaced by ``/feeds/***`` or
    ``/c/***``."""
    return redact_capability_paths(text)


def install(logger_name: str = "uvicorn.access") -> None:
    """Add the filter once (uvicorn configures its loggers before the app starts)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactFeedTokens) for f in logger.filters):
        logger.addFilter(RedactFeedTokens())
