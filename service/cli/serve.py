"""The commands that run Hearth: ``run`` (everything), ``scheduler``, ``worker``, ``web``, ``fire``.

``hearth run`` is one process tree: the embedded Redis when ``REDIS_URL`` is unset, the
migrations, then a scheduler, a Dramatiq worker and the web app as child processes sharing
that Redis. Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after a grace) and
then the embedded Redis, so nothing is left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import Annotated, NoReturn

import typer

from service.config import load_directory
from service.domain.errors import HearthError
from service.domain.events import Purpose
from service.domain.occurrences import ritual_occurrences
from service.domain.sends import extra_send, planned_sends
from service.embedded_redis import EmbeddedRedis
from service.inbound import REPLIES_QUEUE
from service.scheduler.planner import PROMPTS_QUEUE
from service.settings import Settings, load_settings
from service.system_clock import SystemClock

__all__ = ["fire", "run", "scheduler", "web", "worker"]

_GRACE_S = 15.0


def run(
    processes: Annotated[int, typer.Option(help="Dramatiq worker processes.")] = 1,
    threads: Annotated[int, typer.Option(help="Threads per worker process.")] = 4,
    host: Annotated[str, typer.Option(help="Web app address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Web app port.")] = 8000,
) -> None:
    """Run everything: Redis (embedded unless REDIS_URL), migrations, scheduler, worker, web."""
    settings = settings_or_exit()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embedded: EmbeddedRedis | None = None
    try:
        if settings.redis_url:
            url = settings.redis_url
        else:
            embedded = EmbeddedRedis(settings.data_dir.resolve())
            url = embedded.start()
        _migrate(settings)
        env = os.environ | {
            "REDIS_URL": url,
            "HEARTH_DATA_DIR": str(settings.data_dir.resolve()),
            "HEARTH_CONFIG_DIR": str(settings.config_dir.resolve()),
            "HEARTH_OUTBOX": str(settings.outbox_path.resolve()),
        }
        children = {
            "scheduler": _spawn(["scheduler"], env),
            "worker": _spawn(
                ["worker", "--processes", str(processes), "--threads", str(threads)], env
            ),
            "web": _spawn(["web", "--host", host, "--port", str(port)], env),
        }
        _banner(settings, url, f"http://{host}:{port}")
        code = _supervise(children)
    except HearthError as e:
        typer.echo(f"error: {e}", err=True)
        code = 1
    finally:
        if embedded is not None:
            embedded.stop()
    raise typer.Exit(code)


def scheduler() -> None:
    """Run one scheduler (several may run at once; each event is enqueued once)."""
    from service.scheduler.process import run as run_scheduler  # noqa: PLC0415 - heavy imports

    settings = settings_or_exit()
    stop = threading.Event()
    _on_stop_signals(stop.set)
    typer.echo("scheduler: watching " + str(settings.config_dir))
    run_scheduler(settings, settings.clock, stop)


def worker(
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    threads: Annotated[int, typer.Option(help="Threads per process.")] = 4,
) -> None:
    """Run Dramatiq workers for Hearth's actors (replaces this process with `dramatiq`)."""
    settings = settings_or_exit()
    env = dict(os.environ)
    if not settings.redis_url:
        # Resolve the embedded server once here, so every worker process shares it.
        env["REDIS_URL"] = EmbeddedRedis(settings.data_dir.resolve()).start()
    args = [sys.executable, "-m", "dramatiq", "workers.main"]
    args += ["--processes", str(processes), "--threads", str(threads)]
    args += ["--queues", PROMPTS_QUEUE, REPLIES_QUEUE]
    os.execve(sys.executable, args, env)


def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the web app (uvicorn): /healthz now, webhooks and feeds next."""
    import uvicorn  # noqa: PLC0415 - heavy imports

    from service.runtime import redis_url  # noqa: PLC0415
    from service.web import create_app  # noqa: PLC0415

    settings = settings_or_exit()
    uvicorn.run(create_app(settings, redis_url(settings)), host=host, port=port, log_level="info")


def fire(
    couple: Annotated[str, typer.Argument(help="The couple's id.")],
    ritual: Annotated[str, typer.Argument(help="The ritual's id.")],
    partner: Annotated[str | None, typer.Option(help="Only this partner.")] = None,
) -> None:
    """Send a ritual's prompt now, through the same queue and actor as scheduled ones."""
    from dramatiq.brokers.redis import RedisBroker  # noqa: PLC0415 - heavy imports

    from service.scheduler.planner import message_kwargs  # noqa: PLC0415
    from workers.prompts import declare  # noqa: PLC0415

    settings = settings_or_exit()
    loaded = load_directory(settings.config_dir)
    found = loaded.couples.get(couple)
    if found is None:
        known = ", ".join(sorted(loaded.couples)) or "none"
        _fail(f"no couple {couple!r} in {settings.config_dir} (couples: {known})")
    try:
        chosen = found.ritual(ritual)
    except KeyError:
        _fail(
            f"{couple} has no ritual {ritual!r} (rituals: {', '.join(r.id for r in found.rituals)})"
        )
    recipients = list(found.partners)
    if partner is not None:
        try:
            recipients = [found.partner(partner)]
        except KeyError:
            names = ", ".join(p.name for p in found.partners)
            _fail(f"{couple} has no partner {partner!r} (partners: {names})")
    url = settings.redis_url or _running_embedded(settings)
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    actor = declare(broker)
    now = settings.clock.now()
    for person in recipients:
        occurrence = next(
            (
                o
                for o in ritual_occurrences(found, chosen, now, now + timedelta(days=400))
                if o.partner in (None, person.key)
            ),
            None,
        )
        if occurrence is None:
            _fail(f"{couple}/{ritual} has no occurrence in the coming year to prompt for")
        send = extra_send(found, occurrence, person, Purpose.fire(now))
        actor.send(**message_kwargs(send))
        typer.echo(f"queued {send.event_id}")
    broker.close()


# --- helpers ----------------------------------------------------------------------------


def settings_or_exit() -> Settings:
    """The settings, or exit 2 naming what is wrong."""
    try:
        return load_settings()
    except HearthError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def _migrate(settings: Settings) -> None:
    from service.storage import migrate  # noqa: PLC0415 - heavy imports

    migrate(settings.log_url)


def _running_embedded(settings: Settings) -> str:
    from redis import Redis  # noqa: PLC0415
    from redis.exceptions import RedisError  # noqa: PLC0415

    server = EmbeddedRedis(settings.data_dir.resolve())
    try:
        Redis.from_url(server.url, socket_connect_timeout=2).ping()
    except RedisError:
        _fail(f"no Hearth is running on {settings.data_dir}: start `hearth run` first")
    return server.url


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "service.cli", *args], env=env)


def _supervise(children: dict[str, subprocess.Popen[bytes]]) -> int:
    """Wait for a stop signal or a child's death; then stop every child. The exit status."""
    stop = threading.Event()
    _on_stop_signals(stop.set)
    died: str | None = None
    while not stop.wait(0.5):
        died = next((name for name, p in children.items() if p.poll() is not None), None)
        if died is not None:
            typer.echo(
                f"hearth: the {died} exited ({children[died].returncode}); stopping", err=True
            )
            break
    for process in children.values():
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _GRACE_S
    for process in children.values():
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    typer.echo("hearth: stopped")
    return 1 if died else 0


def _on_stop_signals(handler: Callable[[], None]) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _banner(settings: Settings, redis: str, web: str) -> None:
    from service.storage import redact_url  # noqa: PLC0415

    now = SystemClock().now()
    sender = "Twilio" if settings.twilio_enabled else f"console + outbox {settings.outbox_path}"
    typer.echo(
        "\n".join(
            [
                "Hearth is running (Ctrl-C stops it)",
                f"  data dir   {settings.data_dir.resolve()}",
                f"  config     {settings.config_dir.resolve()}",
                f"  redis      {redis}",
                f"  database   {redact_url(settings.log_url)}",
                f"  sms        {sender}",
                f"  web        {web}   (health: {web}/healthz)",
                "  next prompts:",
            ]
        )
    )
    loaded = load_directory(settings.config_dir)
    upcoming = sorted(
        (
            s
            for c in loaded.couples.values()
            for s in planned_sends(c, now, now + timedelta(days=2))
        ),
        key=lambda s: s.at,
    )[:5]
    for send in upcoming:
        typer.echo(
            f"    {send.at:%a %Y-%m-%d %H:%M %Z}  {send.couple}/{send.ritual} -> {send.partner}"
        )
    for failure in loaded.failures:
        for issue in failure.issues:
            typer.echo(f"  config error: {issue}")
    example = next((c for c in loaded.couples.values() if c.rituals), None)
    if example is not None:
        typer.echo(f"  to see a prompt now: hearth fire {example.id} {example.rituals[0].id}")
    sys.stdout.flush()
