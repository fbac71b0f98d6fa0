"""Benchmark: calendar feeds over HTTP, the 304 path and full feeds, against a static file.

What it measures (one run, everything on loopback, every process stopped on the way out):

    Setup (not timed): a fresh embedded Valkey and SQLite log in a temporary data dir, one
    couple with 10 calendar rituals (daily, weekly and monthly, the usual kinds plus custom
    ones), its feeds published by the real ``FeedPublisher``; the published bytes are also
    written to a file.
    Server: ``uvicorn`` in its own process (``--server-workers`` processes, default 1 and 2)
    running the real ``create_app``, with that file mounted as a Starlette ``StaticFiles``
    route: the same server stack serving the same bytes with no lookup at all is the bound.
    Load: ``wrk`` (Debian's package) in its own process, ``--latency`` for percentiles.

    1. 304 path: GET with ``If-None-Match`` of the current ETag, ``-c 64`` connections,
       requests/s (and the same against the static file, with its own ETag).
    2. Full feed latency: one connection, p50/p99 of full GETs (and the static file).
    3. Full feed throughput: ``-c 16``, requests/s and MB/s (and the static file).

Targets (from the requirement): 304 path >= 5,000 req/s on 2 cores; full feed p50 <= 2 ms.

Run
    .venv/bin/python bench/feed_bench.py                # about 2 minutes
    .venv/bin/python bench/feed_bench.py --seconds 5 --server-workers 1
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_304_PER_S = 5000.0
TARGET_P50_MS = 2.0
COUPLE = """\
couple: bench
timezone: America/New_York
partners:
  - {name: Alex, phone: "+15550000001"}
  - {name: Sam, phone: "+15550000002", timezone: Europe/Berlin}
rituals:
  - kind: date_night
    schedule: every friday at 19:30
    alarms: [2h]
  - kind: phone_free
    schedule: weekdays at 19:00
  - kind: conversation
  - {id: walk, kind: custom, name: morning walk, schedule: "weekends at 08:00",
     channels: [calendar]}
  - {id: cook, kind: custom, name: cooking together, schedule: "every wednesday at 18:30",
     channels: [calendar, sms]}
  - {id: tea, kind: custom, name: tea, schedule: "every day at 07:00", duration: 15m,
     channels: [calendar]}
  - {id: plan, kind: custom, name: week planning, schedule: "every sunday at 17:00",
     channels: [calendar]}
  - {id: dance, kind: custom, name: dance class, schedule: "every other tuesday at 20:00",
     duration: 90m, channels: [calendar]}
  - {id: budget, kind: custom, name: money talk, schedule: "first monday of the month at 20:30",
     channels: [calendar]}
  - {id: museum, kind: custom, name: museum day, schedule: "last saturday of the month at 11:00",
     duration: 3h, channels: [calendar]}
"""


def serve_app() -> object:
    """The uvicorn factory the server process runs: the real app plus the static bound."""
    from starlette.staticfiles import StaticFiles

    from service.settings import load_settings
    from service.web.app import create_app

    app = create_app(load_settings(), os.environ["REDIS_URL"])
    app.mount("/static", StaticFiles(directory=os.environ["BENCH_STATIC_DIR"]), name="static")
    return app


@dataclass
class Wrk:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mb_per_s: float
    non_2xx_3xx: int


def run_wrk(url: str, *, seconds: int, connections: int, threads: int, header: str | None) -> Wrk:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if header:
        args += ["-H", header]
    out = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=seconds + 60, check=True
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    transfer = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", out)
    scale = {"B": 1e-6, "KB": 1e-3, "MB": 1.0, "GB": 1e3}
    mb = float(transfer.group(1)) * scale.get(transfer.group(2), 0) if transfer else 0.0
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Wrk(rps, _percentile(out, "50%"), _percentile(out, "99%"), mb,
               int(bad.group(1)) if bad else 0)  # fmt: skip


def _percentile(out: str, label: str) -> float:
    found = re.search(rf"^\s+{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
    if found is None:
        raise SystemExit(f"FAIL: no {label} latency in wrk's output:\n{out}")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(base: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("FAIL: the server exited during start-up")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("FAIL: the server did not answer /healthz in time")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)


def main() -> None:  # noqa: PLR0915 - one linear script, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="per wrk run")
    parser.add_argument("--server-workers", default="1,2", help="uvicorn processes to try")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("FAIL: wrk is not installed (Debian: apt-get install wrk)")

    import httpx

    from service.embedded_redis import EmbeddedRedis
    from service.runtime import Runtime
    from service.settings import load_settings
    from service.storage import make_engine, migrate

    tmp = Path(tempfile.mkdtemp(prefix="hfb-"))
    data, config, static = tmp / "d", tmp / "couples", tmp / "static"
    for d in (data, config, static):
        d.mkdir()
    (config / "bench.yaml").write_text(COUPLE, encoding="utf-8")
    redis_server = EmbeddedRedis(data)
    rows: list[tuple[str, Wrk]] = []
    try:
        url = redis_server.start()
        database = f"sqlite:///{data / 'hearth.sqlite3'}"
        migrate(database)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "HEARTH_CONFIG_DIR": str(config), "HEARTH_DATA_DIR": str(data), "REDIS_URL": url,
            "DATABASE_URL": database, "HEARTH_PUBLIC_URL": base, "BENCH_STATIC_DIR": str(static),
        }  # fmt: skip
        os.environ.update(env)
        from redis import Redis

        redis = Redis.from_url(url)
        engine = make_engine(database)
        publisher = Runtime(load_settings(), redis=redis, engine=engine).feed_publisher()
        publisher.publish("bench")
        [feed_url, *_] = [u.url for u in publisher.urls("bench")]
        body = publisher.served("bench", "alex")
        assert body is not None
        (static / "feed.ics").write_bytes(body)
        events = body.count(b"BEGIN:VEVENT")
        print(f"feed: 10 calendar rituals, {events:,} events, {len(body):,} bytes; "
              f"wrk {args.seconds} s per run; {os.cpu_count()} cores")  # fmt: skip
        for workers in [int(w) for w in args.server_workers.split(",")]:
            server = subprocess.Popen(
                [sys.executable, "-m", "uvicorn", "feed_bench:serve_app", "--factory",
                 "--app-dir", str(ROOT / "bench"), "--host", "127.0.0.1", "--port", str(port),
                 "--workers", str(workers), "--log-level", "warning", "--no-access-log"],
                env=env, start_new_session=True,
            )  # fmt: skip
            try:
                wait_healthy(base, server)
                static_url = f"{base}/static/feed.ics"
                feed_etag = httpx.get(feed_url, timeout=10).headers["etag"]
                static_etag = httpx.get(static_url, timeout=10).headers["etag"]
                assert httpx.get(feed_url, timeout=10).content == body
                assert httpx.get(static_url, timeout=10).content == body
                for label, target, etag in (("feed", feed_url, feed_etag),
                                            ("static", static_url, static_etag)):  # fmt: skip
                    check = httpx.get(target, headers={"If-None-Match": etag}, timeout=10)
                    assert check.status_code == 304, (label, check.status_code)
                    rows.append((f"{workers}w {label} 304, c64",
                                 run_wrk(target, seconds=args.seconds, connections=64,
                                         threads=2, header=f"If-None-Match: {etag}")))  # fmt: skip
                for label, target in (("feed", feed_url), ("static", static_url)):
                    rows.append((f"{workers}w {label} full, c1",
                                 run_wrk(target, seconds=args.seconds, connections=1, threads=1,
                                         header=None)))  # fmt: skip
                    rows.append((f"{workers}w {label} full, c16",
                                 run_wrk(target, seconds=args.seconds, connections=16,
                                         threads=2, header=None)))  # fmt: skip
            finally:
                stop(server)
        redis.close()
        engine.dispose()
    finally:
        redis_server.stop(even_if_shared=True)
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("| run | req/s | p50 ms | p99 ms | MB/s | errors |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, w in rows:
        print(f"| {label} | {w.requests_per_s:,.0f} | {w.p50_ms:.3f} | {w.p99_ms:.3f} | "
              f"{w.mb_per_s:,.1f} | {w.non_2xx_3xx} |")  # fmt: skip
    best_304 = max(w.requests_per_s for label, w in rows if "feed 304" in label)
    p50 = min(w.p50_ms for label, w in rows if "feed full, c1" in label)
    print()
    verdict_304 = "MET" if best_304 >= TARGET_304_PER_S else "MISSED"
    verdict_p50 = "MET" if p50 <= TARGET_P50_MS else "MISSED"
    print(f"304 path >= {TARGET_304_PER_S:,.0f} req/s: {verdict_304} ({best_304:,.0f})")
    print(f"full feed p50 <= {TARGET_P50_MS} ms: {verdict_p50} ({p50:.3f} ms)")


if __name__ == "__main__":
    main()
