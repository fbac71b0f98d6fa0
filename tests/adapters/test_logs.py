"""The log pipeline (service/logs.py, service/redaction.py): JSON or readable lines, and
nothing in them that a log must not hold."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from service.config.loading import load_couple_text
from service.domain.errors import CoupleFileInvalid
from service.logs import default_format, formatter, shared_processors
from service.redaction import redact_failure, scrub
from tests.couple_texts import LEAKY

TOKEN = "q1w2e3r4t5y6u7i8o9p0a1s2d3f4g5h6"


@pytest.fixture
def capture() -> Iterator[tuple[logging.Logger, io.StringIO, list[str]]]:
    """A private logger with one handler in each format; restored afterwards."""
    logger = logging.getLogger("hearth.test.logs")
    streams = {"json": io.StringIO(), "console": io.StringIO()}
    handlers = []
    for fmt, stream in streams.items():
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter(fmt, process="test"))  # type: ignore[arg-type]
        logger.addHandler(handler)
        handlers.append(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    lines: list[str] = []
    try:
        yield logger, streams["json"], lines
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        lines += streams["console"].getvalue().splitlines()


def test_json_lines_carry_level_logger_process_and_a_masked_number(
    capture: tuple[logging.Logger, io.StringIO, list[str]],
) -> None:
    logger, stream, _ = capture
    logger.warning("no answer from %s", "+447700900789")
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["event"] == "no answer from +44••••••789"
    assert (event["level"], event["logger"], event["process"]) == (
        "warning",
        "hearth.test.logs",
        "test",
    )
    assert {"timestamp", "pid"} <= set(event)


def test_console_lines_are_readable_and_masked() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("console", process="web"))
    record = logging.LogRecord(
        "hearth.x", logging.INFO, __file__, 1, "sent to %s", ("+4915112340002",), None
    )
    handler.handle(record)
    line = stream.getvalue().strip()
    assert not line.startswith("{")
    assert "[info" in line
    assert "sent to +49••••••002" in line
    assert "process=web" in line


def test_an_exceptions_text_is_masked_too(
    capture: tuple[logging.Logger, io.StringIO, list[str]],
) -> None:
    logger, stream, _ = capture
    try:
        raise ValueError("The 'To' number +15005550009 is not a valid phone number.")
    except ValueError:
        logger.exception("send failed")
    event = json.loads(stream.getvalue())
    assert "+15••••••009" in event["exception"]
    assert "5005550009" not in stream.getvalue()


def test_structlog_events_go_through_the_same_pipeline() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter("json", process="worker"))
    root = logging.getLogger()
    root.addHandler(handler)
    structlog.configure(
        processors=[
            *shared_processors("worker"),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    try:
        structlog.get_logger("hearth.test").warning("reply stored", phone="+4915112340002")
    finally:
        root.removeHandler(handler)
        structlog.reset_defaults()
    event = json.loads(stream.getvalue())
    assert event["phone"] == "+49••••••002"
    assert event["process"] == "worker"


@pytest.mark.parametrize(
    "path",
    [
        f"/feeds/{TOKEN}.ics",
        f"/feeds/{TOKEN}.txt",
        f"//feeds//{TOKEN}.ics",
        f"/feeds/{TOKEN}.ics?x=1",
        f"/feeds/{TOKEN}",
        f"/feeds/?token={TOKEN}",
        f"/c/{TOKEN}",
        f"/c/{TOKEN}/",
        f"//c/{TOKEN}?week=2",
        f"/C/{TOKEN}",
    ],
)
def test_access_lines_never_show_a_path_under_feeds_or_c(path: str) -> None:
    line = scrub(f'127.0.0.1:5 - "GET {path} HTTP/1.1" 404')
    assert TOKEN not in line
    assert line.startswith('127.0.0.1:5 - "GET /')
    assert line.endswith(' HTTP/1.1" 404')


def test_file_paths_in_tracebacks_are_left_alone() -> None:
    line = 'File "/srv/hearth/service/feeds/publisher.py", line 80, in publish'
    assert scrub(line) == line


def test_a_config_error_in_a_log_keeps_the_place_and_drops_the_values() -> None:
    with pytest.raises(CoupleFileInvalid) as caught:
        load_couple_text(LEAKY, "leaky.yaml")
    assert "7700 900123" in str(caught.value)  # `hearth validate` shows the person their value
    logged = redact_failure(caught.value)
    assert "partners[0].phone" in logged
    assert "rituals[0].schedule" in logged
    assert "7700" not in logged
    assert "miss you" not in logged
    assert "like +15551234567" in logged  # our own example stays


def test_the_default_format_is_console_on_a_terminal_and_json_elsewhere() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert default_format(Tty()) == "console"
    assert default_format(io.StringIO()) == "json"
