"""When an actor's message is worth another try: one rule for every actor."""

from __future__ import annotations

from service.senders import RetryableDeliveryError
from service.storage import StorageError

__all__ = ["MAX_RETRIES", "transient"]

MAX_RETRIES = 20


def transient(retries: int, exc: BaseException) -> bool:
    """Rate limits, provider 5xx and an unreachable database pass; permanent delivery errors
    are recorded where they happen and never raised to the worker."""
    return retries < MAX_RETRIES and isinstance(exc, RetryableDeliveryError | StorageError)
