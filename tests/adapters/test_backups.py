"""`service/backups`: an archive of a real database (SQLite file, or a PostgreSQL database
through the real pg_dump and pg_restore), config and data dir files, restored elsewhere."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import text

from service.backups import FORMAT, BackupError, backup, restore
from service.settings import Settings, load_settings
from service.storage import ReplyLog, current_revision, head_revision, make_engine, migrate
from service.storage.schema import MIGRATIONS
from tests.databases import postgresql_database
from tests.domain.builders import utc

# A PostgreSQL backup runs pg_dump and pg_restore (Debian's postgresql-client): without them
# that case skips, saying so (CI, which has them, fails it).
requires_pg_tools = pytest.mark.skipif(
    shutil.which("pg_dump") is None or shutil.which("pg_restore") is None,
    reason="pg_dump / pg_restore not installed: Debian's postgresql-client has them",
)
BACKENDS = ("sqlite", pytest.param("postgresql", marks=requires_pg_tools))


@contextmanager
def _database(backend: str, directory: Path) -> Iterator[str | None]:
    """None for SQLite (the data dir's file), or the URL of a new PostgreSQL database."""
    if backend == "sqlite":
        yield None
    else:
        with postgresql_database() as url:
            yield url


def _settings(
    monkeypatch: pytest.MonkeyPatch, data: Path, config: Path, database_url: str | None
) -> Settings:
    for name in [n for n in os.environ if n.startswith(("HEARTH_", "TWILIO_"))]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HEARTH_DATA_DIR", str(data))
    monkeypatch.setenv("HEARTH_CONFIG_DIR", str(config))
    if database_url is None:
        monkeypatch.delenv("DATABASE_URL", raising=False)
    else:
        monkeypatch.setenv("DATABASE_URL", database_url)
    return load_settings()


def _rows(url: str) -> dict[str, list[tuple[object, ...]]]:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {
                table: [tuple(r) for r in conn.execute(text(f"SELECT * FROM {table} ORDER BY 1"))]
                for table in ("replies", "alembic_version")
            }
    finally:
        engine.dispose()


def _source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str | None) -> Settings:
    """A data dir as a running Hearth leaves it, a config dir, and two stored replies."""
    data, config = tmp_path / "a" / "var", tmp_path / "a" / "couples"
    (config / ".git").mkdir(parents=True)
    (config / ".git" / "HEAD").write_text("ref: main\n")
    (config / "alex-and-sam.yaml").write_text("timezone: Europe/Berlin\n")
    (config / "more").mkdir()
    (config / "more" / "mia-and-jon.yaml").write_text("timezone: Europe/Paris\n")
    settings = _settings(monkeypatch, data, config, url)
    migrate(settings.log_url)
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name in ("feed-secret", "dev-webhook-token"):
        (data / name).write_text(f"{name}-value\n")
    (data / "run.json").write_text("{}")
    (data / "redis").mkdir()
    (data / "redis" / "appendonly.aof").write_text("*1\r\n")
    # The last line is still being appended: a backup leaves it out.
    (data / "outbox.jsonl").write_text('{"event_id": "a"}\n{"event_id": "b"}\n{"event_')
    replies = ReplyLog(make_engine(settings.log_url))
    for i in range(2):
        replies.store(f"SM{i:032x}", {"From": "+4915112340001", "Body": f"DONE {i}"},
                      utc(2026, 12, 1, 20, i))  # fmt: skip
    replies.engine.dispose()
    return settings


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_restore_brings_back_the_rows_config_secrets_and_outbox(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with _database(backend, tmp_path) as source_url, _database(backend, tmp_path) as target_url:
        source = _source(tmp_path, monkeypatch, source_url)
        archive = tmp_path / "hearth.tar.gz"
        made = backup(source, archive)
        assert stat.S_IMODE(archive.stat().st_mode) == 0o600
        assert made.data == ["dev-webhook-token", "feed-secret"]
        assert made.config == ["alex-and-sam.yaml", "more/mia-and-jon.yaml"]
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            outbox = tar.extractfile("outbox.jsonl")
            assert outbox is not None
            assert outbox.read() == b'{"event_id": "a"}\n{"event_id": "b"}\n'
        database = "database/hearth.sqlite3" if backend == "sqlite" else "database/hearth.pgdump"
        assert sorted(names) == sorted([
            "hearth-backup.json", database, "outbox.jsonl", "config/alex-and-sam.yaml",
            "config/more/mia-and-jon.yaml", "data/feed-secret", "data/dev-webhook-token",
        ])  # fmt: skip

        data, config = tmp_path / "b" / "var", tmp_path / "b" / "couples"
        target = _settings(monkeypatch, data, config, target_url)
        done = restore(target, archive)
        assert done.config_written
        assert _rows(target.log_url) == _rows(source.log_url)
        assert len(_rows(target.log_url)["replies"]) == 2
        assert current_revision(target.log_url) == head_revision()
        assert (data / "feed-secret").read_text() == "feed-secret-value\n"
        assert (data / "outbox.jsonl").read_text().count("\n") == 2
        assert (config / "more" / "mia-and-jon.yaml").read_text() == "timezone: Europe/Paris\n"
        assert not (data / "run.json").exists()
        assert not (data / "redis").exists()
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        for path in data.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        if backend == "postgresql":
            again = _settings(monkeypatch, tmp_path / "c" / "var", config, target_url)
            with pytest.raises(BackupError, match=r"already holds tables in schema 'public' "
                               r"\(alembic_version, answers, "):  # fmt: skip
                restore(again, archive)


def test_restore_refuses_a_target_that_is_not_fresh_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _source(tmp_path, monkeypatch, None)
    archive = tmp_path / "hearth.tar.gz"
    backup(source, archive)
    data, config = tmp_path / "b" / "var", tmp_path / "b" / "couples"

    data.mkdir(parents=True)
    (data / "notes.txt").write_text("mine")
    with pytest.raises(BackupError, match=r"the data dir .*/b/var is not empty \(it holds notes"):
        restore(_settings(monkeypatch, data, config, None), archive)
    assert sorted(p.name for p in data.iterdir()) == ["notes.txt"]
    (data / "notes.txt").unlink()

    config.mkdir()
    (config / "alex-and-sam.yaml").write_text("timezone: Asia/Tokyo\n")
    with pytest.raises(BackupError, match=r"config directory .* holds other files than the "
                       r"backup's \(alex-and-sam.yaml, more/mia-and-jon.yaml\)"):  # fmt: skip
        restore(_settings(monkeypatch, data, config, None), archive)
    assert list(data.iterdir()) == []

    elsewhere = tmp_path / "elsewhere.sqlite3"
    migrate(f"sqlite:///{elsewhere}")
    shutil.rmtree(config)
    with pytest.raises(BackupError, match=r"elsewhere.sqlite3 already exists: restore only into"):
        restore(_settings(monkeypatch, data, config, f"sqlite:///{elsewhere}"), archive)
    assert not config.exists()

    # The config dir already holding exactly the backup's files (a read-only mount) is fine.
    shutil.copytree(source.config_dir, config)
    done = restore(_settings(monkeypatch, data, config, None), archive)
    assert not done.config_written


@pytest.mark.parametrize(
    ("contents", "message"),
    [
        (b"just some bytes", "not a gzip-compressed tar archive"),
        ({"notes.txt": b"x"}, "it has no hearth-backup.json"),
        ({"hearth-backup.json": b"[1]"}, "hearth-backup.json is not a Hearth backup manifest"),
        ({"hearth-backup.json": b'{"format": "hearth-backup/9"}'},
         "is a 'hearth-backup/9' archive; this Hearth reads hearth-backup/1"),
        ({"hearth-backup.json": b"{}", "../../etc/cron.d/x": b"x"},
         "member '../../etc/cron.d/x' is not part of a Hearth backup"),
        ({"hearth-backup.json": b"{}", "data/redis/x": b"x"},
         "member 'data/redis/x' is not part of a Hearth backup"),
    ],
)  # fmt: skip
def test_restore_says_why_a_file_is_not_a_hearth_backup(
    contents: bytes | dict[str, bytes], message: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    archive = tmp_path / "x.tar.gz"
    if isinstance(contents, bytes):
        archive.write_bytes(contents)
    else:
        _tar(archive, contents)
    settings = _settings(monkeypatch, tmp_path / "var", tmp_path / "couples", None)
    with pytest.raises(BackupError, match=message):
        restore(settings, archive)
    assert not (tmp_path / "var").exists()


def test_a_backup_from_a_newer_schema_is_refused_and_an_older_one_migrated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _settings(monkeypatch, tmp_path / "a", tmp_path / "couples", None)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", source.log_url)
    engine = make_engine(source.log_url)  # creates the file 0600 in a 0700 directory
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0007")
    engine.dispose()
    older = tmp_path / "older.tar.gz"
    assert backup(source, older).manifest.revision == "0007"
    target = _settings(monkeypatch, tmp_path / "b", tmp_path / "couples", None)
    restore(target, older)
    assert current_revision(target.log_url) == head_revision()

    with tarfile.open(older) as tar:
        raw = tar.extractfile("hearth-backup.json")
        assert raw is not None
        manifest = json.loads(raw.read())
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    manifest |= {"revision": "0042", "hearth_version": "9.0.0"}
    members["hearth-backup.json"] = json.dumps(manifest).encode()
    newer = tmp_path / "newer.tar.gz"
    _tar(newer, members)
    fresh = _settings(monkeypatch, tmp_path / "c", tmp_path / "couples", None)
    said = rf"revision 0042, which this Hearth does not know \(its newest is {head_revision()}\)"
    with pytest.raises(BackupError, match=rf"made by Hearth 9.0.0, whose database is at {said}"):
        restore(fresh, newer)
    assert not (tmp_path / "c").exists()
    assert manifest["format"] == FORMAT


def test_backup_never_overwrites_and_needs_a_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(monkeypatch, tmp_path / "var", tmp_path / "couples", None)
    with pytest.raises(BackupError, match=r"no database at .*hearth.sqlite3: nothing to back up"):
        backup(settings, tmp_path / "b.tar.gz")
    assert not (tmp_path / "b.tar.gz").exists()
    migrate(settings.log_url)
    (tmp_path / "b.tar.gz").write_text("an older backup")
    with pytest.raises(BackupError, match="already exists: a backup never overwrites"):
        backup(settings, tmp_path / "b.tar.gz")
    assert (tmp_path / "b.tar.gz").read_text() == "an older backup"
    with pytest.raises(BackupError, match="no-such-dir: no such directory"):
        backup(settings, tmp_path / "no-such-dir" / "b.tar.gz")
    with pytest.raises(BackupError, match=r"b.tar.gz is inside the data dir .*var: write it"):
        backup(settings, tmp_path / "var" / "b.tar.gz")


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
