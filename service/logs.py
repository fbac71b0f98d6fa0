"""One log pipeline for every Hearth process: structlog's, rendered as JSON lines or as
readable lines, with numbers masked and capability paths redacted on every line.

``configure(fmt, process=...)`` is called once per process: by the scheduler (through
``runtime.configure_logging``), by ``python -m workers`` before Dramatiq starts and again in
each Dramatiq worker process (``workers/main.py``, whose ``sys.stderr`` is then Dramatiq's
log pipe), and by ``hearth web`` before uvicorn, which is told not to configure its own.
Hearth's modules log with the standard library (``logging.getLogger("hearth.…")``), as
Dramatiq, uvicorn and SQLAlchemy do; structlog's ``ProcessorFormatter`` renders every record
of every library alike, and ``structlog.get_logger()`` works too.

The format: ``HEARTH_LOG_FORMAT=json`` (one JSON object per line: ``timestamp``, ``level``,
``logger``, ``process``, ``pid``, ``event``, and ``exception`` when there is one) or
``console`` (the same fields on one readable line). Unset: ``console`` when stderr is a
terminal, ``json`` otherwise.

``scrub`` (``service/redaction.py``) runs on every string of every event, the exception's
text included, so a phone number in a library's error message is masked too.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, Literal, TextIO

import structlog

from service.redaction import scrub

__all__ = [
    "LogFormat",
    "configure",
    "default_format",
    "formatter",
    "scrub_event",
    "shared_processors",
]

LogFormat = Literal["json", "console"]


def default_format(stream: TextIO | None = None) -> LogFormat:
    """``console`` on a terminal, ``json`` otherwise (a file, a pipe, a log collector)."""
    stream = stream if stream is not None else sys.stderr
    try:
        return "console" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a closed or unusual stream
        return "json"


def configure(
    fmt: LogFormat | None = None,
    *,
    process: str,
    level: int = logging.INFO,
    stream: TextIO | None = None,
) -> None:
    """Route every log record of this process through one handler on ``stream`` (stderr
    as it is now: in a Dramatiq worker process, the pipe to its parent), replacing the
    root logger's handlers, and configure structlog to render the same way."""
    stream = stream if stream is not None else sys.stderr
    fmt = fmt or default_format(stream)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter(fmt, process=process))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Libraries that configured their own handlers (uvicorn does, when asked) log through
    # the root's instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "dramatiq"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Alembic's plugin set-up lines on every engine start are noise in a service's log.
    logging.getLogger("alembic").setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            *shared_processors(process),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def formatter(fmt: LogFormat, *, process: str) -> structlog.stdlib.ProcessorFormatter:
    """The formatter every handler of a Hearth process uses."""
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(ensure_ascii=False)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors(process),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrub_event,
            renderer,
        ],
    )


def scrub_event(
    logger: object, method_name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: ``scrub`` every string in the event, however deep."""
    for key, value in list(event_dict.items()):
        event_dict[key] = _scrubbed(value)
    return event_dict


def shared_processors(process: str) -> list[structlog.typing.Processor]:
    """What every event gets, from structlog or from the standard library alike."""

    def add_process(
        logger: object, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("process", process)
        # Read per event: Dramatiq may fork after this chain was built.
        event_dict.setdefault("pid", os.getpid())
        return event_dict

    return [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_process,
    ]


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, Mapping):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    return value
