"""Small builders for couples in tests: plain dicts, validated by the real ``build_couple``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from service.domain.couples import Couple, build_couple


def couple(*rituals: dict[str, Any], timezone: str = "America/New_York", **extra: Any) -> Couple:
    partners = extra.pop(
        "partners",
        [{"name": "Alex", "phone": "+15550000001"}, {"name": "Sam", "phone": "+15550000002"}],
    )
    data = {
        "couple": "alex-sam",
        "timezone": timezone,
        "partners": partners,
        "rituals": list(rituals),
    }
    data.update(extra)
    return build_couple(data)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]
