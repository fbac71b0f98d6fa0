"""`hearth run` under faults: a child killed is restarted; `hearth run` killed leaves nothing.

The real thing: `hearth run` on the embedded Redis and SQLite in a temporary data dir, its
children found through `<data dir>/run.json` and /proc. Every process a test started is
stopped when it ends, killed if need be.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from tests.faults.processes import daytime_offset_s
from tests.waiting import outbox_lines, wait_for
from tests.web_server import free_port

HEARTH = Path(sys.executable).with_name("hearth")
ROOT = Path(__file__).resolve().parents[2]
# Bounds for waiting, never measurements.
BOOT_S = 60.0
RESTART_S = 30.0
GONE_S = 30.0
STOP_S = 30.0

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc")


@dataclass
class Running:
    process: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str]
    log: Path
    port: int

    def run_file(self) -> dict[str, object]:
        data = json.loads((self.data_dir / "run.json").read_text())
        assert isinstance(data, dict)
        return data

    def child(self, name: str) -> int:
        children = self.run_file()["children"]
        assert isinstance(children, dict)
        return int(children[name])

    def hearth(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(HEARTH), *args], env=self.env, capture_output=True, text=True, timeout=90,
            check=False,
        )  # fmt: skip


def test_a_killed_worker_is_restarted_and_a_prompt_fired_afterwards_goes_out_once(
    tmp_path: Path,
) -> None:
    with _hearth_run(tmp_path) as hearth:
        old = hearth.child("worker")
        old_workers = _descendants(old)
        assert old_workers, "dramatiq forked its worker process"

        os.kill(old, signal.SIGKILL)

        wait_for(
            lambda: hearth.child("worker") != old and _alive(hearth.child("worker")),
            RESTART_S,
            "a new worker in run.json",
            detail=lambda: _tail(hearth.log),
        )
        assert "hearth: the worker exited (-9); restarting in 1 s" in hearth.log.read_text()
        # The killed worker's own worker process does not go on as an orphan.
        wait_for(
            lambda: not any(map(_alive, old_workers)),
            GONE_S,
            "the orphaned worker to stop",
            detail=lambda: "\n".join(map(_describe, old_workers)) + _tail(hearth.log),
        )
        fired = hearth.hearth("fire", "alex-and-sam", "check_in", "--partner", "Sam",
                              "--wait", "45")  # fmt: skip
        assert fired.returncode == 0, fired.stdout + fired.stderr + _tail(hearth.log)
        [queued, outcome] = fired.stdout.splitlines()
        assert outcome == "sent to Sam"
        event_id = queued.removeprefix("queued ")
        sent = [json.loads(line) for line in outbox_lines(hearth.data_dir / "outbox.jsonl")]
        assert [r["event_id"] for r in sent].count(event_id) == 1
        assert _alive(hearth.child("scheduler"))
        assert _alive(hearth.child("web"))


def test_a_killed_embedded_redis_is_restarted_on_its_data_and_hearth_is_healthy_again(
    tmp_path: Path,
) -> None:
    with _hearth_run(tmp_path) as hearth:
        old = hearth.child("redis")
        with redis.Redis.from_url(str(hearth.run_file()["redis_url"])) as client:
            client.set("hearth:test:survives", "yes")
            client.execute_command("BGREWRITEAOF")  # on disk before the kill, not fsync-timed
            wait_for(
                lambda: client.info("persistence")["aof_rewrite_in_progress"] == 0,
                RESTART_S,
                "the AOF rewrite",
            )

        os.kill(old, signal.SIGKILL)

        wait_for(
            lambda: hearth.child("redis") != old and _healthy(hearth.port),
            RESTART_S,
            "a new Redis and /healthz answering 200",
            detail=lambda: _tail(hearth.log),
        )
        assert "hearth: the redis exited (-9); restarting in 1 s" in hearth.log.read_text()
        with redis.Redis.from_url(str(hearth.run_file()["redis_url"])) as client:
            assert client.get("hearth:test:survives") == b"yes"


def test_hearth_run_killed_outright_leaves_no_process_of_its_tree(tmp_path: Path) -> None:
    with _hearth_run(tmp_path) as hearth:
        tree = _descendants(hearth.process.pid)
        named = set(hearth.run_file()["children"].values())  # type: ignore[union-attr]
        assert named <= tree
        assert len(tree) >= 5  # redis, scheduler, worker and its worker process, web
        # Each names the data dir (in its environment at least), which is how the scan
        # below finds them without trusting pids that may be reused once they are gone.
        assert tree <= set(_mentioning(hearth.data_dir))

        hearth.process.kill()
        hearth.process.wait(timeout=STOP_S)

        def left() -> list[int]:
            return _mentioning(hearth.data_dir)

        wait_for(lambda: not left(), GONE_S, "every process of the tree to stop",
                 detail=lambda: "\n".join(_describe(p) for p in left()))  # fmt: skip
        # The embedded Redis got SIGTERM, not SIGKILL: it saved its AOF and removed its files.
        assert not (hearth.data_dir / "redis" / "redis.pid").exists()
        assert not (hearth.data_dir / "redis" / "redis.sock").exists()
        # The run file it could not remove is stale: a new `hearth run` is not refused.
        assert (hearth.data_dir / "run.json").exists()


# --- helpers -----------------------------------------------------------------------------


@contextmanager
def _hearth_run(tmp_path: Path) -> Iterator[Running]:
    """`hearth run` on a free port, healthy; stopped (or killed, with its tree) on leaving."""
    config = tmp_path / "couples"
    shutil.copytree(ROOT / "config" / "couples", config)
    data_dir = tmp_path / "var"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HEARTH_", "TWILIO_")) and k not in ("REDIS_URL", "DATABASE_URL")
    }
    env |= {"HEARTH_DATA_DIR": str(data_dir), "HEARTH_CONFIG_DIR": str(config),
            "HEARTH_CLOCK_OFFSET_S": repr(daytime_offset_s())}  # fmt: skip
    port = free_port()
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(HEARTH), "run", "--port", str(port)],
            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    running = Running(process, data_dir, env, log, port)
    try:
        wait_for(
            lambda: (
                process.poll() is not None or ((data_dir / "run.json").exists() and _healthy(port))
            ),
            BOOT_S,
            "hearth run to be healthy",
            every_s=0.2,
            detail=lambda: _tail(log),
        )
        assert process.poll() is None, _tail(log)
        # Healthy means the web app answers; on a loaded machine the worker forks its worker
        # process a moment later, and the tests below count on the whole tree.
        wait_for(
            lambda: process.poll() is not None or bool(_descendants(running.child("worker"))),
            BOOT_S,
            "the worker to fork its worker process",
            every_s=0.2,
            detail=lambda: _tail(log),
        )
        yield running
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_S)
        # Only processes that still name this data dir (each child inherits it in its
        # environment): a pid seen earlier may belong to someone else by now.
        for pid in _mentioning(data_dir):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the name: state, ppid, …"""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    """Running: a zombie (exited, not reaped) runs nothing any more."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(root: int) -> set[int]:
    """Every live process below ``root``."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        fields = _stat(int(entry.name))
        if fields is not None and fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _mentioning(data_dir: Path) -> list[int]:
    """Live processes whose command line or environment names ``data_dir``."""
    needle = os.fsencode(str(data_dir))
    found = []
    for entry in Path("/proc").glob("[0-9]*"):
        pid = int(entry.name)
        if pid == os.getpid():
            continue
        try:
            seen = (entry / "cmdline").read_bytes() + (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in seen and _alive(pid):
            found.append(pid)
    return found


def _describe(pid: int) -> str:
    """A live process in a line or two: pid, command line, state, threads and signals."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return f"{pid}: gone"
    keep = ("State", "PPid", "Threads", "SigPnd", "ShdPnd", "SigBlk", "SigIgn", "SigCgt")
    return f"{pid}: {cmdline}\n  " + " ".join(line for line in status if line.startswith(keep))


def _tail(path: Path, chars: int = 4000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
