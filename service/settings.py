"""Hearth's settings, from the environment (and a ``.env`` file): one object, read once."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    config_dir: Path = Field(
        default=Path("config/couples"),
        validation_alias="HEARTH_CONFIG_DIR",
        description="Directory of couple files (one <couple>.yaml each).",
    )
