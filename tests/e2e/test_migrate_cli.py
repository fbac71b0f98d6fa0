"""`hearth migrate` through the real command, on SQLite and on PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import inspect

from service.storage import head_revision, make_engine
from tests.databases import BACKENDS, database

HEARTH = Path(sys.executable).with_name("hearth")


def _migrate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "HEARTH_DATA_DIR")}
    return subprocess.run(
        [str(HEARTH), "migrate"],
        check=False,
        env=clean | env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrate_brings_the_log_to_head_and_is_idempotent(backend: str, tmp_path: Path) -> None:
    with database(backend, tmp_path) as url:
        env = {"HEARTH_DATA_DIR": str(tmp_path / "var"), "DATABASE_URL": url}
        first, second = _migrate(env), _migrate(env)
        assert first.returncode == 0, first.stderr
        assert second.returncode == 0, second.stderr
        assert f"revision {head_revision()}" in second.stdout
        engine = make_engine(url)
        try:
            assert "prompts" in inspect(engine).get_table_names()
        finally:
            engine.dispose()


def test_migrate_defaults_to_sqlite_in_the_data_dir(tmp_path: Path) -> None:
    result = _migrate({"HEARTH_DATA_DIR": str(tmp_path / "var")})
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "var" / "hearth.sqlite3").is_file()


def test_migrate_names_a_bad_database_url_and_hides_passwords(tmp_path: Path) -> None:
    bad = _migrate({"HEARTH_DATA_DIR": str(tmp_path), "DATABASE_URL": "mysql://db/x"})
    assert bad.returncode == 2  # a bad setting, as in every command
    assert "DATABASE_URL" in bad.stderr
    down = _migrate(
        {"HEARTH_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgresql://u:s3cret@127.0.0.1:1/x"}
    )
    assert down.returncode == 1
    assert "s3cret" not in down.stderr
    assert "127.0.0.1" in down.stderr
