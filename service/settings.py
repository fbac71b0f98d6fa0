"""Hearth's settings, from the environment (and a ``.env`` file): one object, read once.

A bad value stops start-up with a message that names the variable (``SettingsInvalid``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.domain.durations import parse_duration
from service.domain.errors import HearthError
from service.encryption import Cipher, SecretKey, SecretKeyInvalid
from service.system_clock import SystemClock

__all__ = ["Settings", "SettingsInvalid", "load_settings"]

_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
_MESSAGING_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class SettingsInvalid(HearthError):
    """One or more environment variables hold values Hearth cannot use."""


class Settings(BaseSettings):
    # An empty variable is an unset one: docker-compose.yml passes `${TWILIO_FROM:-}` and the
    # like, which would otherwise turn on Twilio with empty credentials.
    model_config = SettingsConfigDict(
        env_file=".env", extra="ignore", frozen=True, env_ignore_empty=True
    )

    config_dir: Path = Field(
        default=Path("config/couples"),
        validation_alias="HEARTH_CONFIG_DIR",
        description="Directory of couple files (one <couple>.yaml each).",
    )
    data_dir: Path = Field(
        default=Path("var"),
        validation_alias="HEARTH_DATA_DIR",
        description="Where the embedded Redis, the SQLite log and the outbox live.",
    )
    redis_url: str | None = Field(
        default=None,
        validation_alias="REDIS_URL",
        description="An existing Redis; unset: Hearth starts an embedded one in the data dir.",
    )
    database_url: str | None = Field(
        default=None,
        validation_alias="DATABASE_URL",
        description="SQLAlchemy URL of the log; unset: SQLite file in the data dir.",
    )
    twilio_account_sid: str | None = Field(default=None, validation_alias="TWILIO_ACCOUNT_SID")
    twilio_auth_token: str | None = Field(default=None, validation_alias="TWILIO_AUTH_TOKEN")
    twilio_from: str | None = Field(
        default=None,
        validation_alias="TWILIO_FROM",
        description="The sending number (E.164) or a messaging service sid (MG…).",
    )
    twilio_api_url: str | None = Field(
        default=None,
        validation_alias="HEARTH_TWILIO_API_URL",
        description="Send every Twilio API request to this base URL instead of "
        "https://*.twilio.com: a local mock or a recording proxy (tests and drills).",
    )
    sms_rate: float | None = Field(
        default=None,
        gt=0,
        validation_alias="HEARTH_SMS_RATE",
        description="Texts per second across every worker and machine (the account's "
        "sending rate, such as 1 for a US long code); unset: no limit.",
    )
    public_url: str = Field(
        default="http://127.0.0.1:8000",
        validation_alias="HEARTH_PUBLIC_URL",
        description="The URL the world (Twilio, calendar apps) reaches Hearth at.",
    )
    prompt_lease_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias="HEARTH_PROMPT_LEASE_S",
        description="Seconds a worker's claim on a send holds before another worker may take "
        "it over; keep it longer than the send actor's 60 s time limit.",
    )
    grace_prompt: timedelta = Field(
        default=timedelta(hours=2),
        validation_alias="HEARTH_GRACE_PROMPT",
        description="How late a prompt may still go out after downtime (45m, 2h, PT2H).",
    )
    grace_reminder: timedelta = Field(
        default=timedelta(hours=2),
        validation_alias="HEARTH_GRACE_REMINDER",
        description="How late a reminder may go out; never once its occurrence has started.",
    )
    feed_secret: str | None = Field(
        default=None,
        min_length=32,
        validation_alias="HEARTH_FEED_SECRET",
        description="The secret feed tokens are derived from (32+ characters); default: a "
        "random one kept in <data dir>/feed-secret. Changing it changes every feed URL.",
    )
    twilio_keyword_replies: bool = Field(
        default=True,
        validation_alias="HEARTH_TWILIO_ANSWERS_KEYWORDS",
        description="Twilio answers STOP, START and HELP itself (Advanced Opt-Out, on by "
        "default), so Hearth records them without a second answer; set false if you turned "
        "Twilio's answers off. In console mode Hearth always answers.",
    )
    clock_offset_s: float = Field(
        default=0.0,
        validation_alias="HEARTH_CLOCK_OFFSET_S",
        description="Seconds added to this process's clock; for drills and process-level "
        "tests only (every process of one service must be given the same value).",
    )
    outbox: Path | None = Field(
        default=None,
        validation_alias="HEARTH_OUTBOX",
        description="JSON lines the console sender appends to; default <data dir>/outbox.jsonl.",
    )

    secret_key: str | None = Field(
        default=None,
        validation_alias="HEARTH_SECRET_KEY",
        description="Encrypts journal text and raw replies at rest (AES-256-GCM): 32 random "
        "bytes in urlsafe base64, as `hearth secret-key` prints; unset: stored as plaintext.",
    )
    old_secret_keys: str | None = Field(
        default=None,
        validation_alias="HEARTH_OLD_SECRET_KEYS",
        description="Earlier HEARTH_SECRET_KEY values, comma-separated: still read, never "
        "written; `hearth rotate-key` re-encrypts their rows under HEARTH_SECRET_KEY.",
    )

    log_format: Literal["json", "console"] | None = Field(
        default=None,
        validation_alias="HEARTH_LOG_FORMAT",
        description="json (one JSON object per line, for production) or console (readable "
        "lines); unset: console when stderr is a terminal, json otherwise.",
    )

    @field_validator("grace_prompt", "grace_reminder", mode="before")
    @classmethod
    def _duration(cls, value: object) -> object:
        return parse_duration(value) if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"{value!r} is not a redis://, rediss:// or unix:// URL")
        return value or None

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^(sqlite|postgresql)(\+\w+)?://", value):
            raise ValueError(f"{value!r} is not a sqlite:// or postgresql:// URL")
        return value or None

    @field_validator("secret_key")
    @classmethod
    def _secret_key(cls, value: str | None) -> str | None:
        if value:
            _key(value, "HEARTH_SECRET_KEY")
        return value or None

    @field_validator("old_secret_keys")
    @classmethod
    def _old_secret_keys(cls, value: str | None) -> str | None:
        for i, part in enumerate(_split(value), start=1):
            _key(part, f"key {i} of HEARTH_OLD_SECRET_KEYS")
        return value or None

    @field_validator("public_url", "twilio_api_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"{value!r} is not an http(s) URL such as https://hearth.example")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _twilio(self) -> Self:
        given = [self.twilio_account_sid, self.twilio_auth_token, self.twilio_from]
        if any(given) and not all(given):
            raise ValueError(
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM go together: "
                "set all three for real SMS, or none for the console sender"
            )
        if self.twilio_account_sid and not _SID.match(self.twilio_account_sid):
            raise ValueError("TWILIO_ACCOUNT_SID must look like AC followed by 32 hex digits")
        if self.twilio_from and not (
            _E164.match(self.twilio_from) or _MESSAGING_SID.match(self.twilio_from)
        ):
            raise ValueError(
                "TWILIO_FROM must be a number in E.164 (+15551234567) or a messaging service "
                "sid (MG followed by 32 hex digits)"
            )
        return self

    @property
    def twilio_enabled(self) -> bool:
        return self.twilio_account_sid is not None

    @property
    def hearth_answers_keywords(self) -> bool:
        """Whether Hearth itself texts back to STOP, START and HELP."""
        return not (self.twilio_enabled and self.twilio_keyword_replies)

    @property
    def clock(self) -> SystemClock:
        """The wall clock, shifted by ``HEARTH_CLOCK_OFFSET_S``."""
        return SystemClock(timedelta(seconds=self.clock_offset_s))

    @property
    def cipher(self) -> Cipher:
        """Seals with HEARTH_SECRET_KEY (plaintext without it); opens with it and the old keys."""
        current = SecretKey.parse(self.secret_key) if self.secret_key else None
        old = [SecretKey.parse(k) for k in _split(self.old_secret_keys)]
        return Cipher(current, old)

    @property
    def outbox_path(self) -> Path:
        return self.outbox or self.data_dir / "outbox.jsonl"

    @property
    def log_url(self) -> str:
        """The log's URL: DATABASE_URL, or the SQLite file in the data dir."""
        return self.database_url or f"sqlite:///{(self.data_dir / 'hearth.sqlite3').resolve()}"


def _split(keys: str | None) -> list[str]:
    return [k.strip() for k in (keys or "").split(",") if k.strip()]


def _key(text: str, name: str) -> None:
    try:
        SecretKey.parse(text, name)
    except SecretKeyInvalid as e:
        raise ValueError(str(e)) from None


_ALIASES = {name: str(field.validation_alias) for name, field in Settings.model_fields.items()}


# Values never repeated in an error message: credentials, or URLs that may carry them.
_SECRET_FIELDS = {
    "twilio_auth_token",
    "feed_secret",
    "secret_key",
    "old_secret_keys",
    "redis_url",
    "database_url",
}


def load_settings() -> Settings:
    """Read the settings; ``SettingsInvalid`` names every variable that is wrong, on one line."""
    try:
        return Settings()
    except ValidationError as e:
        problems = []
        for err in e.errors():
            field = str(err["loc"][0]) if err["loc"] else ""
            name = _ALIASES.get(field, field) or "TWILIO_*"
            message = err["msg"].removeprefix("Value error, ")
            given = err.get("input")
            # Our own validators quote the value; pydantic's messages ("Input should be
            # greater than 0") do not, and the value is what a person has to find.
            secret = field in _SECRET_FIELDS or field in {_ALIASES[f] for f in _SECRET_FIELDS}
            shown = field and not secret and isinstance(given, str)
            if shown and repr(given) not in message:
                message += f" (it is {given!r})"
            problems.append(f"{name}: {message}")
        raise SettingsInvalid("bad settings: " + "; ".join(problems)) from None
