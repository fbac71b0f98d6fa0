"""Migrations only add, so `hearth migrate` is safe while an older Hearth still runs: each
revision, applied to the schema before it, keeps every table, column (type and nullability),
unique constraint and index, and every allowed value of a check; a column it adds to an
existing table is nullable or has a default (an older Hearth's INSERT leaves it out)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, inspect

from service.storage import known_revisions, make_engine
from service.storage.schema import MIGRATIONS
from tests.databases import BACKENDS, database

# SQLite keeps a check as written, ``state IN ('a', 'b')``; PostgreSQL gives it back as
# ``(state)::text = ANY ((ARRAY['a'::character varying, …])::text[])``.
_IN_LIST = re.compile(r"^\W*(\w+)\W*(?:::\w+\W*)?(?: IN \(| = ANY \(+ARRAY\[)", re.IGNORECASE)


@dataclass(frozen=True)
class Table:
    columns: dict[str, tuple[str, bool, bool]]  # name -> (type, nullable, has a default)
    uniques: set[tuple[str, ...]]
    indexes: set[tuple[str, ...]]
    checks: dict[str, str]  # name -> SQL text


def _schema(engine: Engine) -> dict[str, Table]:
    found = inspect(engine)
    tables = {}
    for name in found.get_table_names():
        if name == "alembic_version":
            continue
        tables[name] = Table(
            columns={
                c["name"]: (str(c["type"]), bool(c["nullable"]), c.get("default") is not None)
                for c in found.get_columns(name)
            },
            uniques={tuple(u["column_names"]) for u in found.get_unique_constraints(name)},
            indexes={tuple(str(c) for c in i["column_names"]) for i in found.get_indexes(name)},
            checks={str(c["name"]): str(c["sqltext"]) for c in found.get_check_constraints(name)},
        )
    return tables


def _upgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _allowed(check: str) -> tuple[str, set[str]] | None:
    """``state IN ('a', 'b')`` -> ("state", {"a", "b"}); None for any other check."""
    match = _IN_LIST.match(check)
    if match is None:
        return None
    return match.group(1), set(re.findall(r"'([^']*)'", check))


def _only_added(before: dict[str, Table], after: dict[str, Table], revision: str) -> list[str]:
    problems = []
    for name, old in before.items():
        new = after.get(name)
        if new is None:
            problems.append(f"{revision} drops table {name}")
            continue
        for column, (kind, nullable, _) in old.columns.items():
            if column not in new.columns:
                problems.append(f"{revision} drops {name}.{column}")
                continue
            new_kind, new_nullable, _ = new.columns[column]
            if new_kind != kind:
                problems.append(f"{revision} changes {name}.{column} from {kind} to {new_kind}")
            if nullable and not new_nullable:
                problems.append(f"{revision} makes {name}.{column} NOT NULL")
        for column, (_, nullable, default) in new.columns.items():
            if column not in old.columns and not (nullable or default):
                problems.append(f"{revision} adds {name}.{column} NOT NULL without a default")
        problems += [f"{revision} drops unique {name}{u}" for u in old.uniques - new.uniques]
        problems += [f"{revision} drops index {name}{i}" for i in old.indexes - new.indexes]
        for check, text in old.checks.items():
            new_text = new.checks.get(check)
            if new_text is None:
                problems.append(f"{revision} drops check {check}")
            elif new_text != text:
                old_list, new_list = _allowed(text), _allowed(new_text)
                widened = (
                    old_list is not None
                    and new_list is not None
                    and old_list[0] == new_list[0]
                    and old_list[1] <= new_list[1]
                )
                if not widened:
                    problems.append(f"{revision} changes check {check}: {text!r} -> {new_text!r}")
    return problems


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_migration_only_adds(backend: str, tmp_path: Path) -> None:
    revisions = known_revisions()
    assert revisions[0] == "0001"
    with database(backend, tmp_path) as url:
        _upgrade(url, revisions[0])
        engine = make_engine(url)
        try:
            before = _schema(engine)
            problems = []
            for revision in revisions[1:]:
                _upgrade(url, revision)
                engine.dispose()  # a fresh look at a schema SQLite may have rebuilt
                after = _schema(engine)
                problems += _only_added(before, after, revision)
                before = after
        finally:
            engine.dispose()
    assert problems == []


def test_the_check_catches_a_migration_that_does_not_only_add() -> None:
    columns = {"state": ("TEXT", False, False), "note": ("TEXT", True, False)}
    checks = {"ck_state": "state IN ('sent', 'failed')"}
    old = {"prompts": Table(columns, {("event_id",)}, set(), checks)}
    columns = {"state": ("INTEGER", False, False), "extra": ("TEXT", False, False)}
    new = {"prompts": Table(columns, set(), set(), {"ck_state": "state IN ('sent')"})}
    assert _only_added(old, new, "0099") == [
        "0099 changes prompts.state from TEXT to INTEGER",
        "0099 drops prompts.note",
        "0099 adds prompts.extra NOT NULL without a default",
        "0099 drops unique prompts('event_id',)",
        "0099 changes check ck_state: \"state IN ('sent', 'failed')\" -> \"state IN ('sent')\"",
    ]
