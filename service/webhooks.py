"""The URLs Twilio calls on Hearth: one spelling of each, for the web app that serves them,
the sender that names them on every message, the wiring check and ``hearth reply``."""

from __future__ import annotations

from urllib.parse import urlencode

__all__ = ["INBOUND_PATH", "STATUS_PATH", "inbound_url", "status_url"]

INBOUND_PATH = "/sms/inbound"  # a partner's text
STATUS_PATH = "/sms/status"  # a text's delivery receipts, ``?event=<event id>``


def inbound_url(public_url: str) -> str:
    """Where Twilio posts partners' texts, under ``HEARTH_PUBLIC_URL``."""
    return public_url.rstrip("/") + INBOUND_PATH


def status_url(public_url: str, event_id: str) -> str:
    """Where Twilio posts the receipts of the text ``event_id``: the id rides in the URL, so
    a receipt finds its send even if the worker died before recording the message sid."""
    return f"{public_url.rstrip('/')}{STATUS_PATH}?{urlencode({'event': event_id})}"
