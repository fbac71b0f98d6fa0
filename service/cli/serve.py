"""The commands that run Hearth: ``run`` (everything), ``scheduler``, ``worker``, ``web``, ``fire``.

``hearth run`` is one process tree: the embedded Redis when ``REDIS_URL`` is unset, the
migrations, then a scheduler, a Dramatiq worker and the web app as child processes sharing
that Redis, supervised (``service/supervision.py``): a child that dies is restarted with
backoff. Ctrl-C or SIGTERM stops the children (SIGTERM, then SIGKILL after a grace) and then
the embedded Redis. Each child holds a lifeline to ``hearth run`` (``service/lifeline.py``),
so killing ``hearth run`` outright leaves nothing running either. Where it serves is in
``<data dir>/run.json`` (``service/running.py``) while it runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from service import lifeline, running
from service.config import load_directory
from service.data_dir import private_directory
from service.domain.errors import HearthError
from service.domain.events import Purpose
from service.domain.occurrences import ritual_occurrences
from service.domain.sends import extra_send, planned_sends
from service.settings import Settings, load_settings

if TYPE_CHECKING:
    from service.embedded_redis import EmbeddedRedis
    from service.runtime import Runtime
from service.supervision import Child, HearthCommand, RedisServer, Supervisor

__all__ = ["fire", "run", "scheduler", "settings_or_exit", "web", "worker"]


def run(
    processes: Annotated[int, typer.Option(help="Dramatiq worker processes.")] = 1,
    threads: Annotated[int, typer.Option(help="Threads per worker process.")] = 4,
    host: Annotated[str, typer.Option(help="Web app address.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Web app port.")] = 8000,
) -> None:
    """Run everything: Redis (embedded unless REDIS_URL), migrations, scheduler, worker, web."""
    settings = settings_or_exit()
    private_directory(settings.data_dir)
    data_dir = settings.data_dir.resolve()
    already = running.find(data_dir)
    if already is not None:
        _fail(f"Hearth is already running on {data_dir} (pid {already.pid}, {already.web_url})")
    web_url = running.web_url(host, port)
    stop = threading.Event()
    _on_stop_signals(stop.set)
    embedded: EmbeddedRedis | None = None
    supervisor: Supervisor | None = None
    try:
        tiers: list[list[Child]] = []
        if settings.redis_url:
            url = settings.redis_url
        else:
            from service.embedded_redis import EmbeddedRedis  # noqa: PLC0415

            embedded = EmbeddedRedis(data_dir)
            url = embedded.start(lifeline=True)
            tiers.append([RedisServer(embedded)])
        _migrate(settings)
        env = os.environ | {
            "REDIS_URL": url,
            "HEARTH_DATA_DIR": str(data_dir),
            "HEARTH_CONFIG_DIR": str(settings.config_dir.resolve()),
            "HEARTH_OUTBOX": str(settings.outbox_path.resolve()),
        }
        if "public_url" not in settings.model_fields_set:
            # Webhook signatures and feed URLs name the address actually served.
            env["HEARTH_PUBLIC_URL"] = web_url
        worker_args = ["--processes", str(processes), "--threads", str(threads)]
        tiers.append(
            [
                HearthCommand("scheduler", ["scheduler"], env),
                HearthCommand("worker", ["worker", *worker_args], env),
                HearthCommand("web", ["web", "--host", host, "--port", str(port)], env),
            ]
        )

        def record() -> None:
            assert supervisor is not None
            here = running.RunningHearth(os.getpid(), web_url, url, supervisor.pids())
            running.record(data_dir, here)

        supervisor = Supervisor(tiers, say=lambda line: typer.echo(line, err=True), on_start=record)
        if not stop.is_set():
            supervisor.start()
            _banner(settings, url, web_url)
            supervisor.watch(stop)
        code = 0
    except HearthError as e:
        typer.echo(f"error: {e}", err=True)
        code = 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if embedded is not None:
            embedded.stop()
        running.forget(data_dir, os.getpid())
    typer.echo("hearth: stopped")
    raise typer.Exit(code)


def scheduler() -> None:
    """Run one scheduler (several may run at once; each event is enqueued once)."""
    from service.runtime import configure_logging  # noqa: PLC0415 - heavy imports
    from service.scheduler.process import run as run_scheduler  # noqa: PLC0415

    settings = settings_or_exit()
    configure_logging(settings, "scheduler")
    lifeline.hold_from_env()
    stop = threading.Event()
    _on_stop_signals(stop.set)
    logging.getLogger("hearth.scheduler").info("watching %s", settings.config_dir)
    run_scheduler(settings, settings.clock, stop)


def worker(
    processes: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    threads: Annotated[int, typer.Option(help="Threads per process.")] = 4,
    shutdown_timeout: Annotated[
        float,
        typer.Option(help="Seconds a stopping worker gives its current messages to finish."),
    ] = 10.0,
) -> None:
    """Run Dramatiq workers for Hearth's actors (replaces this process with `dramatiq`)."""
    settings = settings_or_exit()
    # The kernel's half only: no thread survives the exec. PDEATHSIG does.
    lifeline.hold_from_env(poll_s=0)
    env = dict(os.environ)
    if not settings.redis_url:
        # Resolve the embedded server once here, so every worker process shares it.
        from service.embedded_redis import EmbeddedRedis  # noqa: PLC0415

        env["REDIS_URL"] = EmbeddedRedis(settings.data_dir.resolve()).start()
    # `python -m workers` is `dramatiq` with Hearth's log lines in its main process too.
    args = [sys.executable, "-m", "workers", "workers.main"]
    args += ["--processes", str(processes), "--threads", str(threads)]
    from service.inbound import REPLIES_QUEUE  # noqa: PLC0415
    from service.scheduler.planner import PROMPTS_QUEUE  # noqa: PLC0415

    args += ["--queues", PROMPTS_QUEUE, REPLIES_QUEUE]
    # Dramatiq's default is 10 minutes, and a message whose ack cannot reach Redis (Redis
    # gone with its `hearth run`) keeps a worker stopping until then. Below `hearth run`'s
    # grace, so the worker ends by itself; an unfinished message is redelivered.
    args += ["--worker-shutdown-timeout", str(int(shutdown_timeout * 1000))]
    os.execve(sys.executable, args, env)


def web(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the web app (uvicorn): webhooks, feeds, /healthz, /readyz and /metrics."""
    import uvicorn  # noqa: PLC0415 - heavy imports

    from service.runtime import configure_logging, redis_url  # noqa: PLC0415
    from service.web import create_app  # noqa: PLC0415

    settings = settings_or_exit()
    configure_logging(settings, "web")
    lifeline.hold_from_env()
    app = create_app(settings, redis_url(settings))
    # log_config=None: uvicorn's loggers propagate to the root's one handler (service/logs.py).
    uvicorn.run(app, host=host, port=port, log_level="info", log_config=None)


def fire(
    couple: Annotated[str, typer.Argument(help="The couple's id.")],
    ritual: Annotated[str, typer.Argument(help="The ritual's id.")],
    partner: Annotated[str | None, typer.Option(help="Only this partner.")] = None,
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for each text to be sent (0: do not wait).")
    ] = 10.0,
) -> None:
    """Send a ritual's prompt now, through the same queue and actor as scheduled ones.

    Then wait for each text's outcome in the prompt log: exit 1 unless all were sent.
    """
    from service.runtime import Runtime  # noqa: PLC0415 - heavy imports
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
    runtime = Runtime(settings, redis_url=settings.redis_url or _running_embedded(settings))
    actor = declare(runtime.broker)
    now = runtime.clock.now()
    queued: list[tuple[str, str]] = []  # (partner's name, event id)
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
        queued.append((person.name, send.event_id))
    try:
        if wait > 0 and not _report_sends(runtime, queued, wait):
            raise typer.Exit(1)
    finally:
        runtime.close()


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


def _report_sends(runtime: Runtime, queued: list[tuple[str, str]], wait_s: float) -> bool:
    """Wait up to ``wait_s`` for each queued send to leave ``pending`` in the prompt log, and
    say per partner what became of it. True when every one was sent."""
    from service.storage import PromptRecord, PromptState  # noqa: PLC0415

    log = runtime.prompts
    deadline = time.monotonic() + wait_s
    while True:
        settled: dict[str, PromptRecord | None] = {e: log.get(e) for _, e in queued}
        pending = [r for r in settled.values() if r is None or r.state is PromptState.PENDING]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    all_sent = True
    for name, event_id in queued:
        record = settled[event_id]
        if record is not None and record.state is PromptState.SENT:
            typer.echo(f"sent to {name}")
            continue
        all_sent = False
        if record is None or record.state is PromptState.PENDING:
            # A pending row with an error was held (quiet hours) or is being retried.
            why = record.error if record is not None and record.error else "is a worker running?"
            typer.echo(f"still pending for {name} after {wait_s:g} s ({why})")
        else:
            typer.echo(f"not sent to {name}: {record.error or record.state.value}")
    return all_sent


def _migrate(settings: Settings) -> None:
    from service.storage import migrate  # noqa: PLC0415 - heavy imports

    migrate(settings.log_url)


def _running_embedded(settings: Settings) -> str:
    from redis import Redis  # noqa: PLC0415
    from redis.exceptions import RedisError  # noqa: PLC0415

    from service.embedded_redis import EmbeddedRedis  # noqa: PLC0415

    server = EmbeddedRedis(settings.data_dir.resolve())
    try:
        Redis.from_url(server.url, socket_connect_timeout=2).ping()
    except RedisError:
        _fail(f"no Hearth is running on {settings.data_dir}: start `hearth run` first")
    return server.url


def _on_stop_signals(handler: Callable[[], None]) -> None:
    def on_signal(signum: int, frame: FrameType | None) -> None:
        handler()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _banner(settings: Settings, redis: str, web: str) -> None:
    from service.redaction import redact_issue  # noqa: PLC0415
    from service.storage import redact_url  # noqa: PLC0415

    now = settings.clock.now()
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
        # This banner is the start of the service's log: values stay out of it.
        for issue in failure.issues:
            typer.echo(f"  config error: {redact_issue(issue)}")
    example = next((c for c in loaded.couples.values() if c.rituals), None)
    if example is not None:
        typer.echo(f"  to see a prompt now: hearth fire {example.id} {example.rituals[0].id}")
    sys.stdout.flush()
