"""Access logs without secrets: a feed URL's token is a capability, so it never reaches a log."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactFeedTokens", "install"]

_TOKEN_PATH = re.compile(r"/feeds/[^/?#\s]+\.ics")


class RedactFeedTokens(logging.Filter):
    """Rewrites ``/feeds/<token>.ics`` to ``/feeds/***.ics`` in a record's message and args."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_PATH.sub("/feeds/***.ics", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str):
            record.msg = _TOKEN_PATH.sub("/feeds/***.ics", record.msg)
        return True


def install(logger_name: str = "uvicorn.access") -> None:
    """Add the filter once (uvicorn configures its loggers before the app starts)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactFeedTokens) for f in logger.filters):
        logger.addFilter(RedactFeedTokens())
