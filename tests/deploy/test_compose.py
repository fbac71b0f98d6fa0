"""docker-compose.yml, .env.example and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON Schema (the copy
check-jsonschema ships, with its licence), before and after interpolating `.env.example`;
then what the schema cannot know: every Hearth service runs a real `hearth` command with
options it accepts, sets only variables Hearth reads (derived from `service/settings.py`),
and agrees with the Dockerfile's user, working directory, entry point and paths.
"""

from __future__ import annotations

import json
import re
import shlex
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import typer
import yaml

from service.cli import app
from service.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
VENDOR = files("check_jsonschema.builtin_schemas.vendor")
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
LONG_RUNNING = ("redis", "postgres", "scheduler", "worker", "web")


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _env_example() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f".env.example: {line!r} is not NAME=value"
            pairs[name.strip()] = value.strip()
    return pairs


def _interpolate(node: Any, values: dict[str, str]) -> Any:
    """Compose's interpolation of ``${…}`` with ``values`` (an unset required one fails)."""
    if isinstance(node, dict):
        return {k: _interpolate(v, values) for k, v in node.items()}
    if isinstance(node, list):
        return [_interpolate(v, values) for v in node]
    if not isinstance(node, str):
        return node

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        value = values.get(name)
        empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op is not None and op.endswith("?") and empty:
            raise AssertionError(f"${{{name}}} is required: {arg}")
        if op is not None and op.endswith("-") and empty:
            return arg
        return value or ""

    return _VARIABLE.sub(one, node.replace("$$", "\0")).replace("\0", "$")


def _schema_errors(document: dict[str, Any]) -> list[str]:
    schema = json.loads(VENDOR.joinpath("compose-spec.json").read_text(encoding="utf-8"))
    validator = jsonschema_rs.validator_for(schema)
    return [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
            for e in validator.iter_errors(document)]  # fmt: skip


def _hearth_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose["services"].items() if s.get("build") == "."}


def _dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) pairs, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    joined = re.sub(r"\\\n\s*", " ", text)
    instructions = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            instructions.append((word.upper(), rest.strip()))
    return instructions


def _only(instructions: list[tuple[str, str]], word: str) -> str:
    found = [args for w, args in instructions if w == word]
    assert len(found) == 1, f"the Dockerfile has {len(found)} {word} instructions"
    return found[0]


def _env_pairs(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


def test_the_compose_file_is_valid_under_the_compose_specification() -> None:
    assert VENDOR.joinpath("licenses", "LICENSE.compose-spec").is_file()  # Apache-2.0
    compose = _compose()
    assert _schema_errors(compose) == []
    assert _schema_errors(_interpolate(compose, _env_example())) == []


def test_a_file_that_breaks_the_specification_is_caught() -> None:
    """The schema check can fail: the same file with one wrong key and one wrong type."""
    compose = _compose()
    compose["services"]["web"]["restart_policy"] = "always"
    compose["services"]["scheduler"]["deploy"]["replicas"] = [2]
    errors = _schema_errors(compose)
    assert any("restart_policy" in e for e in errors), errors
    assert any(e.startswith("services/scheduler/deploy/replicas") for e in errors), errors


def test_every_hearth_service_runs_a_real_hearth_command() -> None:
    entrypoint = json.loads(_only(_dockerfile(), "ENTRYPOINT"))
    assert entrypoint == ["hearth"]
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    services = _hearth_services(_compose())
    assert set(services) == {"migrate", "scheduler", "worker", "web"}
    with group.make_context("hearth", ["--help"], resilient_parsing=True) as ctx:
        for name, service in services.items():
            assert "entrypoint" not in service, name
            command, *args = service["command"]
            found = group.get_command(ctx, command)
            assert found is not None, f"{name}: `hearth {command}` is not a hearth command"
            # Parses the options as the command would, failing on any it does not take.
            found.make_context(command, list(args), parent=ctx)
    compiled = [
        compile(test[-1], f"{name} healthcheck", "exec")
        for name, service in _compose()["services"].items()
        if (test := service.get("healthcheck", {}).get("test", [None]))[:2] == ["CMD", "python"]
    ]
    assert len(compiled) == 3


def test_the_compose_sets_only_variables_hearth_reads_and_env_example_feeds_it() -> None:
    read = {str(f.validation_alias) for f in Settings.model_fields.values()}
    compose = _compose()
    for name, service in _hearth_services(compose).items():
        unknown = set(service["environment"]) - read
        assert not unknown, f"{name} sets variables Hearth does not read: {sorted(unknown)}"
    used = set(_VARIABLE.findall((ROOT / "docker-compose.yml").read_text(encoding="utf-8")))
    used_names = {name for name, _, _ in used}
    example = _env_example()
    assert used_names == set(example), "docker-compose.yml and .env.example name other variables"


def test_the_compose_environment_with_env_example_values_is_accepted_by_hearth(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in {str(f.validation_alias) for f in Settings.model_fields.values()}:
        monkeypatch.delenv(name, raising=False)
    web = _interpolate(_compose(), _env_example())["services"]["web"]
    for name, value in web["environment"].items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.database_url is not None
    assert settings.database_url.startswith("postgresql://hearth:")
    assert settings.public_url.startswith("https://")
    assert not settings.twilio_enabled  # empty Twilio variables: the console sender


def test_the_dockerfile_agrees_with_the_compose_file() -> None:
    instructions = _dockerfile()
    user = _only(instructions, "USER")
    assert user not in ("root", "0"), "the image runs as root"
    assert any(w == "RUN" and "useradd" in a and a.endswith(f" {user}") for w, a in instructions)
    assert _only(instructions, "WORKDIR") == "/app"
    env: dict[str, str] = {}
    for word, args in instructions:
        if word == "ENV":
            env |= _env_pairs(args)
    data, config = env["HEARTH_DATA_DIR"], env["HEARTH_CONFIG_DIR"]
    assert json.loads(_only(instructions, "VOLUME")) == [data]
    assert any(w == "RUN" and f"install -d -m 0700 -o {user} -g {user} {data}" in a
               for w, a in instructions)  # fmt: skip
    assert any(w == "RUN" and "postgresql-client" in a for w, a in instructions)  # pg_dump
    # `.env` holds the secrets: never copied into an image layer.
    assert ".env" in (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for name, service in _hearth_services(_compose()).items():
        assert service["environment"]["HEARTH_DATA_DIR"] == data, name
        assert service["environment"]["HEARTH_CONFIG_DIR"] == config, name
        volumes = service["volumes"]
        assert f"hearth-data:{data}" in volumes, name
        assert any(v.endswith(f":{config}:ro") for v in volumes), f"{name}: config not read-only"
        assert service.get("working_dir", "/app") == "/app", name
        assert service.get("user", user) == user, name


def test_the_compose_file_has_what_a_deployment_needs() -> None:
    compose = _compose()
    services = compose["services"]
    for name in LONG_RUNNING:
        assert services[name]["restart"] == "unless-stopped", name
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["migrate"]
    for name in ("scheduler", "worker", "web"):
        waits = services[name]["depends_on"]
        assert waits["migrate"] == {"condition": "service_completed_successfully"}, name
        assert waits["redis"] == {"condition": "service_healthy"}, name
    redis = services["redis"]["command"]
    assert redis[redis.index("--appendonly") + 1] == "yes"
    assert "redis-data:/data" in services["redis"]["volumes"]
    assert "postgres-data:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert set(compose["volumes"]) == {"redis-data", "postgres-data", "hearth-data"}
    assert services["scheduler"]["deploy"]["replicas"] == 2
    # Scalable: no fixed name, no host port, no fixed replica count.
    assert not {"container_name", "ports", "deploy"} & set(services["worker"])
    checks = {n: " ".join(s["healthcheck"]["test"]) for n, s in services.items() if n != "migrate"}
    assert "/healthz" in checks["web"]
    assert "/readyz" in checks["scheduler"]
    assert "/readyz" in checks["worker"]
