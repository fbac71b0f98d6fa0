"""The web app served by a real uvicorn on a free loopback port, in a thread, for a test."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn

from tests.waiting import wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serving:
    """``with Serving(app) as base:``; stopped on leaving, bounded in time."""

    def __init__(self, app: Any) -> None:
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.base = f"http://127.0.0.1:{port}"

    def __enter__(self) -> str:
        self.thread.start()
        wait_for(lambda: self.server.started, 15, "uvicorn to start")
        return self.base

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        assert not self.thread.is_alive(), "uvicorn did not stop"
