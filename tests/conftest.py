"""Suite-wide rules: in CI (HEARTH_REQUIRE_ALL_TOOLS=1) a skipped test is a failed test;
tests that run Hearth's processes run one at a time.

A test that needs a tool a fresh machine may lack (Node for the Twilio mock, Chromium,
PostgreSQL) skips with that reason on a newcomer's machine; CI has them all, so there the
same skip means something is broken and must fail loudly.

``scripts/test`` runs pytest-xdist workers. The tests under
``tests/e2e`` and ``tests/faults`` start schedulers, workers, web apps and Redis servers and
wait for them against deadlines: they form one group, run by one worker in turn, so two
fleets never share the cores, while the other workers take the in-process tests, at a
lower priority (nice 10), so that a fleet starting beside them still meets its deadlines.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Generator
from pathlib import Path

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

TESTS = Path(__file__).resolve().parent
PROCESS_DIRECTORIES = (TESTS / "e2e", TESTS / "faults")
PROCESS_NODE_PREFIXES = ("tests/e2e/", "tests/faults/")


IN_PROCESS_NICENESS = 10


def _starts_processes(item: pytest.Item) -> bool:
    return any(item.path.is_relative_to(d) for d in PROCESS_DIRECTORIES)


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """xdist's load-by-scope scheduling, with every test that starts processes in one scope
    (sent first, being the largest) and each other module a scope of its own."""
    from xdist.scheduler import LoadScopeScheduling

    class ProcessTestsTogether(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(PROCESS_NODE_PREFIXES):
                return "processes"
            return str(super()._split_scope(nodeid))

    return ProcessTestsTogether(config, log)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return  # one process runs everything: nothing to share the cores with
    niceness = 0 if _starts_processes(item) else IN_PROCESS_NICENESS
    # Inherited by the processes the test starts. Lowering it again needs privileges:
    # without them a worker keeps the niceness it had.
    with contextlib.suppress(PermissionError):
        os.setpriority(os.PRIO_PROCESS, 0, niceness)
