"""The couple's data is theirs: ``hearth export`` gives all of it, ``hearth forget`` deletes it.

What Hearth holds about a couple lives in four places, and both commands visit each:

- the couple's description: its file in the config dir, and its last good text in Redis
  (``{ns}:config:last-good``), which is also where ``forget`` learns the partners' numbers
  once the file is gone;
- SQL (``CoupleRows``): sends, replies, answers and journal entries, changes, partner
  states, feed token metadata, ritual versions;
- Redis: the schedule and its indexes, fired and missed markers, plan digests, re-plan
  marks, cached feeds, Dramatiq messages not yet handled, requeue markers;
- the data dir: the console sender's outbox lines (and any file named for the couple).

``forget`` refuses while the couple's file is in the config dir (the scheduler would plan it
again) with ``StillConfigured``. In Redis it deletes the keys it knows by name, then sweeps
every key: a key whose name mentions the couple id (as a whole word), the partners' numbers
or the couple's reply MessageSids is deleted, and so is every member, field or list entry
that does; a Dramatiq message removed from a queue's ``.msgs`` hash leaves its queue and
acks too. Then Redis rewrites its append-only file (and snapshot, if it keeps one), so the
deleted values do not stay on disk. The outbox is rewritten without the couple's lines
(a temporary file renamed over it; lines a worker appended meanwhile are carried over).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from redis.exceptions import RedisError, ResponseError

from service.config.loading import couple_files, load_couple_text, load_directory
from service.config.shared import RedisLastGood
from service.domain.errors import CoupleFileInvalid, HearthError
from service.feeds.publisher import feed_key, render_requested_key, revoked_key, served_key
from service.storage.couple_rows import CoupleRows

if TYPE_CHECKING:
    from datetime import datetime

    from redis import Redis

    from service.domain.couples import Couple
    from service.runtime import Runtime

__all__ = [
    "EXPORT_FORMAT",
    "Description",
    "Forgotten",
    "StillConfigured",
    "describe",
    "export_couple",
    "forget_couple",
]

EXPORT_FORMAT = "hearth-export/1"
# How long ``forget`` waits for Redis to rewrite its files.
REWRITE_WAIT_S = 60.0


class StillConfigured(HearthError):
    """``forget`` was asked for a couple whose file is still in the config dir."""


@dataclass(frozen=True, slots=True)
class Description:
    """What Hearth can read of a couple's description: from its file, or the last good
    version kept in Redis once the file is gone."""

    source: Literal["file", "last-good"] | None
    file: str | None
    text: str | None
    couple: Couple | None
    last_good_names: tuple[str, ...] = ()

    @property
    def numbers(self) -> set[str]:
        return {p.phone for p in self.couple.partners} if self.couple else set()


@dataclass
class Forgotten:
    """What ``forget`` deleted: rows by table, Redis keys and entries, outbox lines, files."""

    rows: dict[str, int] = field(default_factory=dict)
    redis_keys: int = 0
    redis_entries: int = 0
    outbox_lines: int = 0
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def describe(runtime: Runtime, couple_id: str) -> Description:
    """The couple's description: its file if one in the config dir is the couple's, else
    its last good text in Redis, else nothing."""
    settings = runtime.settings
    names = _last_good_of(RedisLastGood(runtime.redis), couple_id)
    if settings.config_dir.is_dir():
        loaded = load_directory(settings.config_dir)
        path = loaded.files.get(couple_id)
        if path is not None:
            text = path.read_text(encoding="utf-8")
            couple = loaded.couples[couple_id]
            return Description("file", path.name, text, couple, tuple(names))
    for name, text in names.items():
        try:
            couple = load_couple_text(text, name, default_id=Path(name).stem)
        except CoupleFileInvalid:
            continue
        return Description("last-good", name, text, couple, tuple(names))
    return Description(None, None, None, None, tuple(names))


def export_couple(runtime: Runtime, couple_id: str, now: datetime) -> dict[str, Any]:
    """Everything Hearth holds about the couple, as one JSON value (schema/export.schema.json)."""
    described = describe(runtime, couple_id)
    rows = CoupleRows(runtime.engine, runtime.cipher).export(couple_id, described.numbers)
    config = {
        "source": described.source,
        "file": described.file,
        "text": described.text,
        "couple": described.couple.model_dump(mode="json") if described.couple else None,
    }
    return {
        "format": EXPORT_FORMAT,
        "couple": couple_id,
        "exported_at": now.isoformat(),
        "config": config,
        **rows,
        "outbox": list(_outbox_lines(runtime.settings.outbox_path, couple_id, described.numbers)),
    }


def forget_couple(runtime: Runtime, couple_id: str) -> Forgotten:
    """Delete everything Hearth holds about the couple; ``StillConfigured`` while its file
    is in the config dir. Safe to run again (a second run finds nothing)."""
    settings = runtime.settings
    if settings.config_dir.is_dir():
        named = [p for p in couple_files(settings.config_dir) if p.stem == couple_id]
        path = load_directory(settings.config_dir).files.get(couple_id) or next(iter(named), None)
        if path is not None:
            raise StillConfigured(
                f"couple {couple_id!r} still has its file {path} in the config dir: remove "
                "it first (the scheduler would plan the couple again), then run forget"
            )
    described = describe(runtime, couple_id)
    numbers = described.numbers
    rows = CoupleRows(runtime.engine, runtime.cipher)
    sids = rows.reply_sids(couple_id, numbers)
    forgotten = Forgotten()
    # Redis first: its markers are found through SQL's event ids and token hashes.
    _forget_redis(
        runtime.redis,
        forgotten,
        couple_id,
        rows.event_ids(couple_id, numbers),
        sids,
        rows.token_hashes(couple_id),
        numbers,
        described,
    )
    forgotten.rows = rows.delete(couple_id, numbers)
    forgotten.outbox_lines = _rewrite_outbox(settings.outbox_path, couple_id, numbers)
    forgotten.files = _remove_named_files(settings.data_dir, couple_id)
    return forgotten


# --- Redis -------------------------------------------------------------------------------


def _forget_redis(
    redis: Redis,
    out: Forgotten,
    couple: str,
    event_ids: list[str],
    sids: list[str],
    token_hashes: list[str],
    numbers: Collection[str],
    described: Description,
    ns: str = "hearth",
) -> None:
    served = [m.decode() for m in cast("set[bytes]", redis.smembers(served_key(couple, ns)))]
    named = [feed_key(h, ns) for h in {*token_hashes, *served}]
    named += [f"{ns}:couple:{couple}", served_key(couple, ns), revoked_key(couple, ns),
              render_requested_key(couple, ns)]  # fmt: skip
    out.redis_keys += int(redis.delete(*named))
    if described.last_good_names:
        out.redis_entries += int(redis.hdel(f"{ns}:config:last-good", *described.last_good_names))
    if event_ids:
        with redis.pipeline(transaction=False) as pipe:
            pipe.zrem(f"{ns}:due", *event_ids)
            pipe.hdel(f"{ns}:events", *event_ids)
            pipe.hdel(f"{ns}:meta", *event_ids)
            pipe.zrem(f"{ns}:fired", *event_ids)
            out.redis_entries += sum(int(n) for n in pipe.execute())
    _sweep(redis, out, _needles(couple, numbers, sids), _key_needle(couple, ns))
    _rewrite_files(redis, out)


def _needles(couple: str, numbers: Collection[str], sids: Collection[str]) -> re.Pattern[bytes]:
    """What marks an entry as the couple's. The couple id only where Hearth puts it (the
    whole entry, an id's first part, the end of a ``"<ms> <couple>"`` value, a JSON
    ``couple`` field), never as any word: a couple called ``prompts`` must not take every
    Dramatiq message of the prompts queue with it."""
    c = re.escape(couple.encode())
    words = [
        rb"^" + c + rb"$",
        rb"(?:^|[\s\"/])" + c + rb"/",
        rb"\s" + c + rb"$",
        rb'"couple":\s*"' + c + rb'"',
    ]
    words += [re.escape(n.encode()) + rb"(?![0-9])" for n in numbers]
    words += [re.escape(s.encode()) + rb"(?![A-Za-z0-9])" for s in sids]
    return re.compile(b"|".join(words))


def _key_needle(couple: str, ns: str) -> re.Pattern[bytes]:
    """A key named for the couple: ``{ns}:<kind>:<couple>`` (``:…`` may follow)."""
    return re.compile(
        rb"^" + re.escape(ns.encode()) + rb":[^:]+:" + re.escape(couple.encode()) + rb"(?::|$)"
    )


def _sweep(
    redis: Redis, out: Forgotten, needle: re.Pattern[bytes], named: re.Pattern[bytes]
) -> None:
    """Every key named for the couple goes; so does every entry that is theirs, anywhere."""
    gone_messages: list[bytes] = []
    for key in cast("Iterator[bytes]", redis.scan_iter(count=1000)):
        kind = cast("bytes", redis.type(key)).decode()
        if named.search(key) or needle.search(key):
            out.redis_keys += int(redis.delete(key))
            continue
        if kind == "string":
            value = cast("bytes | None", redis.get(key))
            if value is not None and needle.search(value):
                out.redis_keys += int(redis.delete(key))
        elif kind == "hash":
            fields = [
                f
                for f, v in cast("Iterator[tuple[bytes, bytes]]", redis.hscan_iter(key))
                if needle.search(f) or needle.search(v)
            ]
            if fields:
                out.redis_entries += int(redis.hdel(key, *fields))
                if key.endswith(b".msgs"):  # a Dramatiq queue's messages: leave its queue
                    gone_messages += fields
                    _drop_queued(redis, key.removesuffix(b".msgs"), fields)
        elif kind == "set":
            members = [
                m for m in cast("Iterator[bytes]", redis.sscan_iter(key)) if needle.search(m)
            ]
            if members:
                out.redis_entries += int(redis.srem(key, *members))
        elif kind == "zset":
            scored = cast("Iterator[tuple[bytes, float]]", redis.zscan_iter(key))
            members = [m for m, _ in scored if needle.search(m)]
            if members:
                out.redis_entries += int(redis.zrem(key, *members))
        elif kind == "list":
            entries = cast("list[bytes]", redis.lrange(key, 0, -1))
            for entry in {e for e in entries if needle.search(e)}:
                out.redis_entries += int(redis.lrem(key, 0, entry))  # type: ignore[arg-type]
    if gone_messages:
        for key in cast("Iterator[bytes]", redis.scan_iter(match=b"*__acks__*", count=1000)):
            if cast("bytes", redis.type(key)) == b"set":
                redis.srem(key, *gone_messages)


def _drop_queued(redis: Redis, queue: bytes, message_ids: list[bytes]) -> None:
    kind = cast("bytes", redis.type(queue))
    if kind == b"list":
        for message_id in message_ids:
            redis.lrem(queue, 0, message_id)  # type: ignore[arg-type]
    elif kind == b"zset":
        redis.zrem(queue, *message_ids)


def _rewrite_files(redis: Redis, out: Forgotten) -> None:
    """Have Redis write its files anew from memory, so deleted values leave the disk."""
    try:
        aof = cast("dict[str, str]", redis.config_get("appendonly")).get("appendonly") == "yes"
        rdb = bool(cast("dict[str, str]", redis.config_get("save")).get("save"))
        if aof:
            _wait_idle(redis)
            redis.bgrewriteaof()
        if rdb:
            _wait_idle(redis)
            redis.bgsave()
        _wait_idle(redis)
    except (ResponseError, RedisError) as e:
        out.warnings.append(
            f"Redis could not be asked to rewrite its files ({e}): deleted values may stay "
            "in its append-only file or snapshot until its next rewrite"
        )


def _wait_idle(redis: Redis) -> None:
    deadline = time.monotonic() + REWRITE_WAIT_S
    while time.monotonic() < deadline:
        info = redis.info("persistence")
        busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
        if not any(int(info.get(k, 0)) for k in busy):
            return
        time.sleep(0.05)
    raise RedisError(f"a rewrite still ran after {REWRITE_WAIT_S:g} s")


# --- Files -------------------------------------------------------------------------------


def _last_good_of(shared: RedisLastGood, couple_id: str) -> dict[str, str]:
    """The last good texts that describe ``couple_id`` (by its ``couple:`` or file name)."""
    found = {}
    for name, text in shared.all().items():
        try:
            couple = load_couple_text(text, name, default_id=Path(name).stem).id
        except CoupleFileInvalid:
            couple = Path(name).stem
        if couple == couple_id:
            found[name] = text
    return found


def _is_couples(line: str, couple: str, numbers: Collection[str]) -> bool:
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and (
        record.get("couple") == couple or record.get("to") in numbers
    )


def _outbox_lines(outbox: Path, couple: str, numbers: Collection[str]) -> Iterator[Any]:
    try:
        with outbox.open(encoding="utf-8") as lines:
            for line in lines:
                if _is_couples(line, couple, numbers):
                    yield json.loads(line)
    except FileNotFoundError:
        return


def _rewrite_outbox(outbox: Path, couple: str, numbers: Collection[str]) -> int:
    """Rewrite the outbox without the couple's lines (0600, renamed over it); returns how
    many went. A line a worker appends meanwhile is carried over after the rename."""
    try:
        old = outbox.open("rb")
    except FileNotFoundError:
        return 0
    removed = 0
    temporary = outbox.with_name(f".{outbox.name}.forget-{os.getpid()}")
    with old:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as new:
            for line in old:
                if _is_couples(line.decode("utf-8", "replace"), couple, numbers):
                    removed += 1
                else:
                    new.write(line)
            new.flush()
            os.fsync(new.fileno())
            os.replace(temporary, outbox)
            for line in old:  # appended to the old file between our read and the rename
                if _is_couples(line.decode("utf-8", "replace"), couple, numbers):
                    removed += 1
                else:
                    new.write(line)
    return removed


def _remove_named_files(data_dir: Path, couple: str) -> list[str]:
    word = re.compile(r"(?<![a-z0-9_-])" + re.escape(couple) + r"(?![a-z0-9_-])")
    removed: list[str] = []
    if not data_dir.is_dir():
        return removed
    for path in sorted(data_dir.rglob("*")):
        if path.is_file() and word.search(path.name):
            path.unlink()
            removed.append(str(path))
    return removed
