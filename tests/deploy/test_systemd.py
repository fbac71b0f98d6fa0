"""The systemd units in deploy/: `systemd-analyze verify` where it is installed (it checks
every directive and the unit graph), and statically everywhere: the directives a unit of
Hearth must have, each ExecStart a real `hearth` command, and only variables Hearth reads.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from service.cli import app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
HEARTH = "/opt/hearth/venv/bin/hearth"  # where README's install steps put it
LONG_RUNNING = ("hearth-scheduler.service", "hearth-worker@.service", "hearth-web.service")
UNITS = ("hearth-migrate.service", *LONG_RUNNING)
# What the static check accepts: the directives these units use, so that a misspelt one
# fails here as systemd-analyze would flag it.
KNOWN = {
    "Unit": {"Description", "Wants", "After", "Requires"},
    "Service": {
        "Type", "RemainAfterExit", "User", "Group", "EnvironmentFile", "Environment",
        "StateDirectory", "StateDirectoryMode", "UMask", "ExecStart", "Restart", "RestartSec",
        "KillMode", "TimeoutStopSec", "NoNewPrivileges", "ProtectSystem", "ProtectHome",
        "PrivateTmp",
    },
    "Install": {"WantedBy"},
}  # fmt: skip


def _unit(name: str) -> dict[str, dict[str, list[str]]]:
    """Section -> directive -> values (a directive may repeat), as systemd reads it."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for number, raw in enumerate((DEPLOY / name).read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert current is not None, f"{name}:{number}: a directive outside any section"
        assert sep, f"{name}:{number}: not `Key=value`"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _only(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    values = unit[section].get(key, [])
    assert len(values) == 1, f"[{section}] {key}: {values}"
    return values[0]


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_a_real_hearth_command_as_its_own_user(name: str) -> None:
    unit = _unit(name)
    for section, keys in unit.items():
        assert section in KNOWN, f"{name}: unknown section [{section}]"
        assert set(keys) <= KNOWN[section], f"{name}: unknown {set(keys) - KNOWN[section]}"
    service = unit["Service"]
    assert _only(unit, "Service", "User") == "hearth"
    assert _only(unit, "Service", "StateDirectory") == "hearth"
    assert _only(unit, "Service", "StateDirectoryMode") == "0700"
    assert _only(unit, "Service", "UMask") == "0077"
    environment = dict(
        pair.split("=", 1) for line in service["Environment"] for pair in line.split()
    )
    assert environment["HEARTH_DATA_DIR"] == "/var/lib/hearth"  # the StateDirectory
    read = {str(f.validation_alias) for f in Settings.model_fields.values()}
    assert set(environment) <= read
    assert _only(unit, "Service", "EnvironmentFile") == "/etc/hearth/hearth.env"
    binary, command, *args = _only(unit, "Service", "ExecStart").split()
    assert binary == HEARTH
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    with group.make_context("hearth", ["--help"], resilient_parsing=True) as ctx:
        found = group.get_command(ctx, command)
        assert found is not None, f"{name}: `hearth {command}` is not a hearth command"
        found.make_context(command, args, parent=ctx)  # fails on an option it does not take
    assert _only(unit, "Install", "WantedBy") == "multi-user.target"


@pytest.mark.parametrize("name", LONG_RUNNING)
def test_the_long_running_units_restart_on_failure_after_the_migration(name: str) -> None:
    unit = _unit(name)
    assert _only(unit, "Service", "Restart") == "on-failure"
    assert "hearth-migrate.service" in _only(unit, "Unit", "Requires").split()
    assert "hearth-migrate.service" in _only(unit, "Unit", "After").split()


def test_the_worker_is_a_template_and_the_migration_a_one_shot() -> None:
    worker = _unit("hearth-worker@.service")
    assert "%i" in _only(worker, "Unit", "Description")
    assert _only(worker, "Service", "KillMode") == "mixed"
    migrate = _unit("hearth-migrate.service")
    assert _only(migrate, "Service", "Type") == "oneshot"
    assert _only(migrate, "Service", "ExecStart") == f"{HEARTH} migrate"


def test_the_environment_file_example_names_only_variables_hearth_reads() -> None:
    read = {str(f.validation_alias) for f in Settings.model_fields.values()}
    names = {
        line.split("=", 1)[0]
        for line in (DEPLOY / "hearth.env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert names <= read, names - read
    assert {"REDIS_URL", "DATABASE_URL", "HEARTH_PUBLIC_URL"} <= names


@pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze is not installed (Debian's systemd has it); the static checks ran",
)
def test_systemd_analyze_verifies_every_unit(tmp_path: Path) -> None:
    # verify checks that ExecStart's program exists: this checkout's hearth stands in.
    here = str(Path(sys.executable).with_name("hearth"))
    for name in UNITS:
        text = (DEPLOY / name).read_text().replace(HEARTH, here)
        (tmp_path / name).write_text(text)
    names = [n.replace("@.service", "@1.service") for n in UNITS]  # a template by instance
    done = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", *names],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    # A misspelt directive is only a warning (exit 0): any word from it is a failure here.
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
