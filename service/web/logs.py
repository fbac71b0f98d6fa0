"""Access logs without secrets: a feed's or a dashboard's URL token is a capability, so it
never reaches a log."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactFeedTokens", "install", "redact"]

# /feeds/<token>.ics and /c/<token>: the token is everything up to the next /, ?, # or space.
_TOKEN_PATHS = ((re.compile(r"/feeds/[^/?#\s]+\.ics"), "/feeds/***.ics"),
                (re.compile(r"/c/[^/?#\s]+"), "/c/***"))  # fmt: skip


class RedactFeedTokens(logging.Filter):
    """Rewrites ``/feeds/<token>.ics`` to ``/feeds/***.ics`` and ``/c/<token>`` to ``/c/***``
    in a record's message and args."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def redact(text: str) -> str:
    """``text`` with every feed and dashboard token replaced by ``***``."""
    for pattern, replacement in _TOKEN_PATHS:
        text = pattern.sub(replacement, text)
    return text


def install(logger_name: str = "uvicorn.access") -> None:
    """Add the filter once (uvicorn configures its loggers before the app starts)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactFeedTokens) for f in logger.filters):
        logger.addFilter(RedactFeedTokens())
