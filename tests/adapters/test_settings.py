"""Settings from the environment and .env: defaults, and every bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.settings import SettingsInvalid, load_settings

VARS = (
    "HEARTH_CONFIG_DIR", "HEARTH_DATA_DIR", "REDIS_URL", "DATABASE_URL", "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "HEARTH_PUBLIC_URL", "HEARTH_OUTBOX",
    "HEARTH_PROMPT_LEASE_S", "HEARTH_GRACE_PROMPT", "HEARTH_GRACE_REMINDER",
)  # fmt: skip
SID = "AC" + "a" * 32


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_are_the_embedded_ones(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.log_url == f"sqlite:///{tmp_path / 'var' / 'hearth.sqlite3'}"
    assert settings.outbox_path == Path("var/outbox.jsonl")
    assert not settings.twilio_enabled
    assert settings.config_dir == Path("config/couples")


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "HEARTH_DATA_DIR=/srv/hearth\nREDIS_URL=redis://127.0.0.1:7000/0\n"
    )
    settings = load_settings()
    assert settings.data_dir == Path("/srv/hearth")
    assert settings.redis_url == "redis://127.0.0.1:7000/0"


@pytest.mark.parametrize(
    ("name", "value", "needle"),
    [
        ("REDIS_URL", "http://x", "REDIS_URL: 'http://x' is not a redis://"),
        ("DATABASE_URL", "mysql://db/x", "DATABASE_URL: 'mysql://db/x' is not a sqlite://"),
        ("HEARTH_PUBLIC_URL", "hearth.example", "HEARTH_PUBLIC_URL: 'hearth.example' is not an"),
    ],
)
def test_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, needle: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsInvalid, match=needle):
        load_settings()


def test_twilio_settings_go_together_and_are_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", SID)
    with pytest.raises(SettingsInvalid, match="go together"):
        load_settings()
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "token")
    monkeypatch.setenv("TWILIO_FROM", "5551234")
    with pytest.raises(SettingsInvalid, match="TWILIO_FROM must be"):
        load_settings()
    monkeypatch.setenv("TWILIO_FROM", "+15551234567")
    assert load_settings().twilio_enabled
    monkeypatch.setenv("TWILIO_FROM", "MG" + "b" * 32)
    assert load_settings().twilio_enabled
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", "AC123")
    with pytest.raises(SettingsInvalid, match="TWILIO_ACCOUNT_SID must look like"):
        load_settings()


def test_grace_windows_read_friendly_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import timedelta

    assert load_settings().grace_prompt == timedelta(hours=2)
    monkeypatch.setenv("HEARTH_GRACE_PROMPT", "45m")
    monkeypatch.setenv("HEARTH_GRACE_REMINDER", "PT1H30M")
    settings = load_settings()
    assert settings.grace_prompt == timedelta(minutes=45)
    assert settings.grace_reminder == timedelta(hours=1, minutes=30)
    monkeypatch.setenv("HEARTH_GRACE_PROMPT", "soon")
    with pytest.raises(SettingsInvalid, match="HEARTH_GRACE_PROMPT: 'soon' is not a duration"):
        load_settings()


def test_an_empty_variable_is_an_unset_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """docker-compose.yml passes `TWILIO_FROM: ${TWILIO_FROM:-}` and the like."""
    for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM", "HEARTH_FEED_SECRET",
                 "HEARTH_SMS_RATE", "HEARTH_SECRET_KEY", "HEARTH_PUBLIC_URL"):  # fmt: skip
        monkeypatch.setenv(name, "")
    settings = load_settings()
    assert not settings.twilio_enabled
    assert (settings.feed_secret, settings.sms_rate, settings.secret_key) == (None, None, None)
    assert settings.public_url == "http://127.0.0.1:8000"
