"""Suite-wide rules: in CI (HEARTH_REQUIRE_ALL_TOOLS=1) a skipped test is a failed test.

A test that needs a tool a fresh machine may lack (Node for the Twilio mock, Chromium,
PostgreSQL) skips with that reason on a newcomer's machine; CI has them all, so there the
same skip means something is broken and must fail loudly.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

STRICT = os.environ.get("HEARTH_REQUIRE_ALL_TOOLS") == "1"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    if STRICT and report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where every tool must be present: {reason}"


pytest_plugins = ["tests.redis_server", "tests.twilio_fake", "tests.twilio_mock"]
