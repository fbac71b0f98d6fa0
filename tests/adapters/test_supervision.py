"""The supervisor's rules on children it can poll: when a death is restarted, in what order
children stop. (Real processes: tests/faults/test_supervision.py.)"""

from __future__ import annotations

import threading

from service.supervision import Backoff, Supervisor


class FakeChild:
    """A child whose death is decided by the test."""

    def __init__(self, name: str, events: list[str]) -> None:
        self.name = name
        self.events = events
        self.code: int | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self.starts or None

    def start(self) -> None:
        self.starts += 1
        self.code = None
        self.events.append(f"start {self.name}")

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.events.append(f"terminate {self.name}")

    def finish(self, deadline: float) -> None:
        self.events.append(f"finish {self.name}")


def test_backoff_doubles_from_one_second_to_a_thirty_second_cap() -> None:
    assert [Backoff().delay_s(n) for n in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]


def test_a_dead_child_is_restarted_after_a_doubling_delay_reset_once_it_stayed_up() -> None:
    said: list[str] = []
    worker = FakeChild("worker", [])
    supervisor = Supervisor([[worker]], say=said.append)
    stop = threading.Event()
    supervisor.start()
    # start() stamps the start with the monotonic clock; the test's clock starts later.
    now = 1e9

    def die_and_restart(code: int) -> float:
        nonlocal now
        worker.code = code
        supervisor.check(now, stop)
        delay = float(said[-1].rsplit(" in ", 1)[1].removesuffix(" s"))
        supervisor.check(now + delay - 0.01, stop)
        starts = worker.starts
        supervisor.check(now + delay, stop)
        assert worker.starts == starts + 1
        now += delay
        return delay

    assert [die_and_restart(-9) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    assert said[0] == "hearth: the worker exited (-9); restarting in 1 s"
    now += Backoff().steady_s  # up a minute: the next death is a first one again
    assert die_and_restart(1) == 1


def test_no_restart_once_stopping_and_children_stop_last_tier_first() -> None:
    events: list[str] = []
    redis, web = FakeChild("redis", events), FakeChild("web", events)
    supervisor = Supervisor([[redis], [web]], say=lambda _: None)
    stop = threading.Event()
    supervisor.start()
    web.code = 0
    supervisor.check(1e9, stop)
    stop.set()
    supervisor.check(1e9 + 60, stop)
    supervisor.stop()

    assert events == [
        "start redis",
        "start web",
        "terminate web",
        "finish web",
        "terminate redis",
        "finish redis",
    ]
