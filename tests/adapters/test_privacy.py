"""The couple's data is theirs: export, forget, encryption at rest, private files.

A real history is made through the real parts (live config with its last good versions in
Redis, the scheduler, the send path with the console outbox, the reply handler, the feed
publisher) for two couples; then one couple is exported or forgotten, and everything that
could hold it is scanned: every table, every Redis key and value, every file in the data
directory (the SQLite file, its -wal and -shm, the embedded Redis's append-only files, the
outbox) byte by byte.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jsonschema_rs
import pytest
from redis import Redis
from sqlalchemy import Engine, MetaData, Table, inspect, select
from typer.testing import CliRunner

from service.cli.app import app
from service.domain.clock import ManualClock
from service.domain.sends import planned_sends
from service.embedded_redis import EmbeddedRedis
from service.encryption import PREFIX, SealedUnreadable, generate_key
from service.privacy import StillConfigured, export_couple, forget_couple
from service.runtime import Runtime
from service.scheduler.planner import Scheduler
from service.senders import ConsoleSender
from service.sending import SendRequest
from service.settings import Settings
from service.storage import AnswerLog, FeedTokens, ReplyLog, make_engine, migrate
from service.storage.couple_rows import CoupleRows
from service.storage.rekeying import rekey
from tests.databases import database

ROOT = Path(__file__).resolve().parents[2]
GONE = "zoe-kai-q7"
ZOE, KAI = "+15557770001", "+15557770002"
STAYS = "ann-bob"
ANN, BOB = "+15550000011", "+15550000012"
SECRET_WORDS = "lighthouse picnic under the quiet stars"
KEPT_WORDS = "pancakes at the harbour cafe"
START = datetime(2026, 3, 2, 17, tzinfo=UTC)  # noon in New York

COUPLE_FILE = """\
couple: {id}
timezone: America/New_York
partners:
  - name: {a}
    phone: "{pa}"
  - name: {b}
    phone: "{pb}"
rituals:
  - kind: check_in
    schedule: every day at 21:00
  - kind: date_night
    schedule: every friday at 19:30
"""


@dataclass
class History:
    runtime: Runtime
    settings: Settings
    clock: ManualClock
    redis: Redis


def _settings(tmp_path: Path, url: str, **extra: str) -> Settings:
    values = {
        "HEARTH_CONFIG_DIR": str(tmp_path / "couples"),
        "HEARTH_DATA_DIR": str(tmp_path / "data"),
        "DATABASE_URL": url,
        "HEARTH_FEED_SECRET": "x" * 40,
        **extra,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def _write_couples(config_dir: Path) -> None:
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / f"{GONE}.yaml").write_text(
        COUPLE_FILE.format(id=GONE, a="Zoe", pa=ZOE, b="Kai", pb=KAI), encoding="utf-8"
    )
    (config_dir / f"{STAYS}.yaml").write_text(
        COUPLE_FILE.format(id=STAYS, a="Ann", pa=ANN, b="Bob", pb=BOB), encoding="utf-8"
    )


def _live(settings: Settings, url: str, redis_url: str) -> Iterator[History]:
    migrate(url)
    _write_couples(settings.config_dir)
    clock = ManualClock(START)
    engine = make_engine(url)
    runtime = Runtime(settings, clock=clock, redis_url=redis_url, engine=engine)
    # The console sender writes its outbox in the data dir; keep its stdout out of the run.
    runtime.__dict__["sender"] = ConsoleSender(settings.outbox_path, io.StringIO())
    try:
        yield History(runtime, settings, clock, runtime.redis)
    finally:
        runtime.close()
        engine.dispose()


def _make_history(h: History) -> None:
    """Two evenings of check-ins for both couples: prompts sent, journal entries, a pause,
    feeds published, the schedule planned and some of it queued."""
    runtime = h.runtime
    couples = runtime.couples
    couples.refresh_now()  # saves each file's last good text in Redis
    scheduler = Scheduler(runtime.schedule_store(), h.redis, grace=runtime.grace,
                          changes=AnswerLog(runtime.engine).changes)  # fmt: skip
    scheduler.set_couples(couples.live.couples, h.clock.now())
    send_path, handler = runtime.send_path(), runtime.reply_handler()
    replies = ReplyLog(runtime.engine, runtime.cipher)
    publisher = runtime.feed_publisher()
    for couple_id, (first, second), words in (
        (GONE, (ZOE, KAI), SECRET_WORDS),
        (STAYS, (ANN, BOB), KEPT_WORDS),
    ):
        couple = couples.get(couple_id)
        assert couple is not None
        for day in (0, 1):
            begin = START + timedelta(days=day)
            for send in planned_sends(couple, begin, begin + timedelta(hours=12)):
                if send.ritual != "check_in":
                    continue
                h.clock.set(send.at)
                send_path.handle(SendRequest(send.id, send.due))
            h.clock.set(begin + timedelta(hours=9, minutes=10))
            for phone, body in ((first, f"{words} {day}"), (second, "done")):
                sid = "SM" + secrets.token_hex(16)
                replies.store(sid, {"MessageSid": sid, "From": phone, "Body": body},
                              h.clock.now())  # fmt: skip
                handler.handle(sid)
        sid = "SM" + secrets.token_hex(16)
        replies.store(sid, {"MessageSid": sid, "From": second, "Body": "PAUSE 2d"}, h.clock.now())
        handler.handle(sid)
        publisher.publish(couple_id)
        publisher.rotate(couple_id, couple.partners[0].key)  # a revoked hash and a new nonce
    h.clock.set(START + timedelta(days=2, hours=4))
    scheduler.set_couples(couples.live.couples, h.clock.now())
    scheduler.tick(h.clock.now())  # queues what is due: Dramatiq messages in Redis


def _needles() -> list[bytes]:
    return [GONE.encode(), ZOE.encode(), KAI.encode(), ZOE[1:].encode(), KAI[1:].encode(),
            SECRET_WORDS.encode()]  # fmt: skip


def _table_rows(engine: Engine) -> dict[str, list[str]]:
    with engine.connect() as conn:
        names = inspect(conn).get_table_names()
        metadata = MetaData()
        return {
            name: [repr(tuple(r)) for r in conn.execute(select(Table(name, metadata,
                                                                     autoload_with=conn)))]
            for name in names
        }  # fmt: skip


def _redis_dump(redis: Redis) -> list[bytes]:
    """Every key and every value in the database, as bytes."""
    out: list[bytes] = []
    for key in redis.scan_iter(count=1000):
        out.append(key)
        kind = redis.type(key)
        if kind == b"string":
            out.append(redis.get(key) or b"")
        elif kind == b"hash":
            for f, v in redis.hgetall(key).items():
                out += [f, v]
        elif kind == b"set":
            out += list(redis.smembers(key))
        elif kind == b"zset":
            out += [m for m, _ in redis.zrange(key, 0, -1, withscores=True)]
        elif kind == b"list":
            out += redis.lrange(key, 0, -1)
    return out


def _files(data_dir: Path) -> dict[str, bytes]:
    return {str(p.relative_to(data_dir)): p.read_bytes() for p in data_dir.rglob("*")
            if p.is_file() and not p.name.endswith(".sock")}  # fmt: skip


def _found(blobs: dict[str, bytes] | dict[str, list[str]] | list[bytes]) -> list[str]:
    hits = []
    items = blobs.items() if isinstance(blobs, dict) else enumerate(blobs)
    for where, blob in items:
        data = ("\n".join(blob)).encode() if isinstance(blob, list) else blob
        hits += [f"{where}: {n.decode()}" for n in _needles() if n in data]
    return hits


@pytest.fixture
def sqlite_history(tmp_path: Path) -> Iterator[History]:
    """SQLite and the embedded Redis, both in the data dir (so their files are scanned)."""
    url = f"sqlite:///{tmp_path / 'data' / 'hearth.sqlite3'}"
    settings = _settings(tmp_path, url)
    with EmbeddedRedis(settings.data_dir) as server:
        yield from _live(settings, url, server.url)


@pytest.fixture
def postgresql_history(tmp_path: Path, redis_url: str) -> Iterator[History]:
    with database("postgresql", tmp_path) as url:
        yield from _live(_settings(tmp_path, url), url, redis_url)


def test_forget_leaves_nothing_of_the_couple_in_tables_redis_or_files(
    sqlite_history: History,
) -> None:
    h = sqlite_history
    _make_history(h)
    data_dir = h.settings.data_dir
    assert _found(_table_rows(h.runtime.engine)), "the history holds the couple"
    assert _found(_redis_dump(h.redis))
    assert _found(_files(data_dir))
    kept_rows = {t: [r for r in rows if STAYS in r] for t, rows in
                 _table_rows(h.runtime.engine).items()}  # fmt: skip
    kept_outbox = [x for x in h.settings.outbox_path.read_text().splitlines() if STAYS in x]
    (h.settings.config_dir / f"{GONE}.yaml").unlink()

    gone = forget_couple(h.runtime, GONE)

    assert gone.rows["prompts"] > 0
    assert gone.rows["answers"] > 0
    assert gone.outbox_lines > 0
    assert not gone.warnings
    assert _found(_table_rows(h.runtime.engine)) == []
    assert _found(_redis_dump(h.redis)) == []
    assert _found(_files(data_dir)) == []
    # The other couple is untouched.
    after = _table_rows(h.runtime.engine)
    assert {t: [r for r in rows if STAYS in r] for t, rows in after.items()} == kept_rows
    assert list(h.settings.outbox_path.read_text().splitlines()) == kept_outbox
    assert next(e.note for e in AnswerLog(h.runtime.engine).journal(STAYS)).startswith(KEPT_WORDS)
    assert h.redis.exists(f"hearth:couple:{STAYS}", f"hearth:feeds:{STAYS}") == 2
    assert h.redis.hexists("hearth:plan-digest", STAYS)
    assert h.redis.hexists("hearth:config:last-good", f"{STAYS}.yaml")
    # Forgetting again finds nothing to delete.
    assert sum(forget_couple(h.runtime, GONE).rows.values()) == 0


def test_forget_leaves_no_row_of_the_couple_on_postgresql(postgresql_history: History) -> None:
    h = postgresql_history
    _make_history(h)
    (h.settings.config_dir / f"{GONE}.yaml").unlink()
    forget_couple(h.runtime, GONE)
    rows = _table_rows(h.runtime.engine)
    assert _found(rows) == []
    assert _found(_redis_dump(h.redis)) == []
    assert any(STAYS in r for r in rows["answers"])


def test_forget_refuses_while_the_couples_file_is_in_the_config_dir(
    tmp_path: Path, redis_url: str
) -> None:
    with database("sqlite", tmp_path) as url:
        for h in _live(_settings(tmp_path, url), url, redis_url):
            _make_history(h)
            before = _table_rows(h.runtime.engine)
            with pytest.raises(StillConfigured, match=f"{GONE}.yaml.*remove it first"):
                forget_couple(h.runtime, GONE)
            assert _table_rows(h.runtime.engine) == before
            env = {"HEARTH_CONFIG_DIR": str(h.settings.config_dir),
                   "HEARTH_DATA_DIR": str(h.settings.data_dir), "DATABASE_URL": url,
                   "REDIS_URL": redis_url}  # fmt: skip
            result = CliRunner().invoke(app, ["forget", GONE, "--yes"], env=env)
            assert result.exit_code == 1
            assert "remove it first" in result.output


def test_export_holds_the_whole_history_and_matches_its_schema(
    tmp_path: Path, redis_url: str
) -> None:
    key = generate_key()
    with database("sqlite", tmp_path) as url:
        settings = _settings(tmp_path, url, HEARTH_SECRET_KEY=key)
        for h in _live(settings, url, redis_url):
            _make_history(h)
            runtime = Runtime(settings, engine=make_engine(url))
            [dashboard] = runtime.dashboard_links().urls(GONE, ["zoe"], datetime.now(UTC))
            feed = h.runtime.feed_publisher().urls(GONE)[0].url
            env = {"HEARTH_CONFIG_DIR": str(settings.config_dir),
                   "HEARTH_DATA_DIR": str(settings.data_dir), "DATABASE_URL": url,
                   "REDIS_URL": redis_url, "HEARTH_SECRET_KEY": key,
                   "HEARTH_FEED_SECRET": "x" * 40}  # fmt: skip
            result = CliRunner().invoke(app, ["export", GONE], env=env)
            assert result.exit_code == 0, result.output
            document = json.loads(result.stdout)
    schema = json.loads((ROOT / "schema" / "export.schema.json").read_text(encoding="utf-8"))
    jsonschema_rs.validate(schema, document)
    assert document["couple"] == GONE
    assert document["config"]["source"] == "file"
    assert {p["phone"] for p in document["config"]["couple"]["partners"]} == {ZOE, KAI}
    assert [j["text"] for j in document["journal"]] == [f"{SECRET_WORDS} 0", f"{SECRET_WORDS} 1"]
    bodies = {r["body"] for r in document["replies"]}
    assert {f"{SECRET_WORDS} 0", "done", "PAUSE 2d"} <= bodies  # opened, not sealed
    assert all(r["raw"]["From"] in (ZOE, KAI) for r in document["replies"])
    assert {s["state"] for s in document["sends"]} >= {"sent"}
    assert [p["partner"] for p in document["partners"] if p["paused_until"]] == ["kai"]
    assert {t["partner"]: t["generation"] for t in document["feed_tokens"]} == {"zoe": 2, "kai": 1}
    assert {k for t in document["feed_tokens"] for k in t} == {
        "partner",
        "generation",
        "created_at",
    }
    assert [t["partner"] for t in document["dashboard_tokens"]] == ["zoe"]
    assert dashboard.url.rsplit("/", 1)[1] not in result.stdout
    assert STAYS not in result.stdout
    assert ANN not in result.stdout
    # Never a token, its hash or its nonce.
    hashes = CoupleRows(make_engine(url)).token_hashes(GONE)
    nonces = [t.nonce for t in FeedTokens(make_engine(url)).of_couple(GONE).values()]
    assert hashes
    assert nonces
    assert not any(x in result.stdout for x in hashes + nonces)
    assert feed.rsplit("/", 1)[1].removesuffix(".ics") not in result.stdout


def test_export_reads_the_last_good_version_once_the_file_is_gone(
    tmp_path: Path, redis_url: str
) -> None:
    with database("sqlite", tmp_path) as url:
        for h in _live(_settings(tmp_path, url), url, redis_url):
            _make_history(h)
            (h.settings.config_dir / f"{GONE}.yaml").unlink()
            document = export_couple(h.runtime, GONE, h.clock.now())
    assert document["config"]["source"] == "last-good"
    assert len(document["journal"]) == 2


def test_journal_text_and_raw_replies_are_sealed_and_rotate_to_a_new_key(
    tmp_path: Path, redis_url: str
) -> None:
    first, second = generate_key(), generate_key()
    with database("sqlite", tmp_path) as url:
        # Rows written before encryption was on stay readable.
        for h in _live(_settings(tmp_path, url), url, redis_url):
            _make_history(h)
        engine = make_engine(url)
        try:
            plain = _table_rows(engine)
            assert any(SECRET_WORDS in r for r in plain["answers"])
            for key, old in ((first, None), (second, first)):
                extra = {"HEARTH_SECRET_KEY": key} | ({"HEARTH_OLD_SECRET_KEYS": old} if old
                                                       else {})  # fmt: skip
                cipher = _settings(tmp_path, url, **extra).cipher
                done = rekey(engine, cipher, batch=3)
                assert done.answers > 0
                assert done.replies > 0
                assert rekey(engine, cipher) == type(done)(0, 0)  # idempotent
                rows = _table_rows(engine)
                assert not any(SECRET_WORDS in r or ZOE in r for t in ("answers", "replies")
                               for r in rows[t])  # fmt: skip
                assert sum(f"{PREFIX}{cipher.current.id}:" in r  # type: ignore[union-attr]
                           for r in rows["answers"]) == len(rows["answers"])  # fmt: skip
                journal = AnswerLog(engine, cipher).journal(GONE)
                assert [e.note for e in journal] == [f"{SECRET_WORDS} 0", f"{SECRET_WORDS} 1"]
            # Under the second key alone, nothing sealed with the first is left to need it.
            only = _settings(tmp_path, url, HEARTH_SECRET_KEY=second).cipher
            assert len(AnswerLog(engine, only).journal(GONE)) == 2
            with pytest.raises(SealedUnreadable, match="sealed under key"):
                AnswerLog(engine, _settings(tmp_path, url, HEARTH_SECRET_KEY=first).cipher
                          ).journal(GONE)  # fmt: skip
        finally:
            engine.dispose()


def test_a_reply_written_with_a_key_reads_back_and_is_not_stored_plain(
    tmp_path: Path, redis_url: str
) -> None:
    key = generate_key()
    with database("sqlite", tmp_path) as url:
        for h in _live(_settings(tmp_path, url, HEARTH_SECRET_KEY=key), url, redis_url):
            replies = ReplyLog(h.runtime.engine, h.runtime.cipher)
            replies.store("SM1", {"From": ZOE, "Body": SECRET_WORDS}, h.clock.now())
            record = replies.get("SM1")
            assert record is not None
            assert record.raw["Body"] == SECRET_WORDS
            rows = _table_rows(h.runtime.engine)["replies"]
            assert not any(SECRET_WORDS in r or ZOE in r for r in rows)
            with pytest.raises(SealedUnreadable):
                ReplyLog(h.runtime.engine).get("SM1")


def test_a_bad_secret_key_is_a_settings_error_that_does_not_repeat_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from service.settings import SettingsInvalid, load_settings

    monkeypatch.setenv("HEARTH_SECRET_KEY", "not-a-key-at-all")
    with pytest.raises(SettingsInvalid, match="HEARTH_SECRET_KEY must be 32 random bytes") as e:
        load_settings()
    assert "not-a-key-at-all" not in str(e.value)


def test_files_holding_personal_data_are_0600_in_a_0700_data_dir(
    sqlite_history: History,
) -> None:
    h = sqlite_history
    _make_history(h)
    data_dir = h.settings.data_dir
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("hearth.sqlite3", "hearth.sqlite3-wal", "hearth.sqlite3-shm", "outbox.jsonl",
                 "feed-secret", "webhook-token"):  # fmt: skip
        path = data_dir / name
        if name in ("feed-secret", "webhook-token"):
            from service.local_secret import local_secret

            local_secret(path, 16)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name


def test_the_data_dir_is_made_private_even_when_it_exists(tmp_path: Path) -> None:
    from service.data_dir import private_directory

    loose = tmp_path / "var"
    loose.mkdir(mode=0o755)
    os.chmod(loose, 0o755)
    private_directory(loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
