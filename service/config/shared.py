"""The last good version of each couple file, shared in Redis by every process.

``{ns}:config:last-good`` is a hash: file name -> the file's text as last loaded good. The
scheduler, every worker and the web app save to it as they load, so a process that starts
while a file is broken reads the good text from here (``LiveConfig``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from redis.exceptions import RedisError

from service.domain.errors import HearthError

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisLastGood", "SharedConfigUnavailable"]


class SharedConfigUnavailable(HearthError):
    """Redis could not be read or written for the shared last good versions."""


class RedisLastGood:
    """``LastGood`` in a Redis hash; writes only when the text differs from what is there."""

    def __init__(self, redis: Redis, namespace: str = "hearth") -> None:
        self._redis = redis
        self._key = f"{namespace}:config:last-good"

    def save(self, name: str, text: str) -> None:
        try:
            if self.load(name) != text:
                self._redis.hset(self._key, name, text.encode("utf-8"))
        except RedisError as e:
            raise SharedConfigUnavailable(f"Redis: {e}") from e

    def load(self, name: str) -> str | None:
        try:
            raw = cast("bytes | None", self._redis.hget(self._key, name))
        except RedisError as e:
            raise SharedConfigUnavailable(f"Redis: {e}") from e
        return raw.decode("utf-8") if raw is not None else None

    def all(self) -> dict[str, str]:
        """Every file's last good text, by file name."""
        try:
            raw = cast("dict[bytes, bytes]", self._redis.hgetall(self._key))
        except RedisError as e:
            raise SharedConfigUnavailable(f"Redis: {e}") from e
        return {name.decode(): text.decode("utf-8") for name, text in raw.items()}

    def forget(self, name: str) -> None:
        try:
            self._redis.hdel(self._key, name)
        except RedisError as e:
            raise SharedConfigUnavailable(f"Redis: {e}") from e
