"""SMS text on the wire: the punctuation Hearth normalises, and how many segments a text costs.

A single curly quote turns a whole text from GSM-7 into UCS-2 and more than halves a
segment's length (160 → 70 characters), so bodies are normalised to plain ASCII punctuation
before sending; an emoji in a name cannot be normalised and makes the text UCS-2. Carriers
bill, and may split or drop, per segment: ``hearth validate`` warns about texts that need
more than ``SEGMENT_WARNING`` of them, and each send records its count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "SEGMENT_WARNING",
    "Cost",
    "cost",
    "is_gsm7",
    "normalise_body",
    "segments",
    "words_digest",
]

SEGMENT_WARNING = 2  # more segments than this, and ``hearth validate`` warns


@dataclass(frozen=True, slots=True)
class Cost:
    """What a body costs on the wire: its segments, and the encoding that decided them."""

    segments: int
    encoding: Literal["GSM-7", "UCS-2"]
    culprit: str | None  # UCS-2 only: the first character outside GSM-7 (why it is UCS-2)


def normalise_body(body: str) -> str:
    """``body`` with curly quotes, dashes, ellipses and odd spaces as their ASCII forms."""
    return body.translate(_ASCII_PUNCTUATION)


def words_digest(event_id: str, body: str) -> str:
    """What identifies the words ``body`` handed to the provider for ``event_id``, without
    keeping them: SHA-256 over the event id and the normalised body (64 hex digits).

    A text's words can change between two attempts (a weekly summary counts one more
    missed day, a name is edited), so a lookup for an earlier attempt matches on the words
    that attempt sent, not on the words the text would have now. The event id salts it:
    one table of digests serves no other row.
    """
    data = f"{event_id}\n{normalise_body(body)}".encode()
    return hashlib.sha256(data).hexdigest()


def segments(body: str) -> int:
    """How many SMS segments ``body`` takes (an empty body still is one text).

    GSM-7 when every character is in the GSM 03.38 alphabet: 160 septets in one segment,
    153 per segment when split, the extension characters (``^{}\\[]~|€`` and form feed)
    taking two. Otherwise UCS-2: 70 UTF-16 units, 67 per segment, characters outside the
    BMP (most emoji) taking two. A two-unit character is never split across segments.
    """
    if is_gsm7(body):
        sizes = [2 if ch in _GSM_EXTENSION else 1 for ch in body]
        single, part = 160, 153
    else:
        sizes = [2 if ord(ch) > 0xFFFF else 1 for ch in body]
        single, part = 70, 67
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > part:
            segments, used = segments + 1, 0
        used += size
    return segments


def cost(body: str) -> Cost:
    """``body``'s segments and encoding, as sent (normalise it first, as the senders do)."""
    culprit = next((ch for ch in body if ch not in _GSM_BASIC and ch not in _GSM_EXTENSION), None)
    return Cost(segments(body), "GSM-7" if culprit is None else "UCS-2", culprit)


def is_gsm7(body: str) -> bool:
    """Whether every character of ``body`` is in the GSM 03.38 alphabet or its extension."""
    return all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body)


_ASCII_PUNCTUATION = str.maketrans(
    {
        "\u2018": "'",  # left single quote
        "\u2019": "'",  # right single quote, apostrophe
        "\u201a": "'",  # single low-9 quote
        "\u201b": "'",  # single high-reversed-9 quote
        "\u2032": "'",  # prime
        "\u201c": '"',  # left double quote
        "\u201d": '"',  # right double quote
        "\u201e": '"',  # double low-9 quote
        "\u201f": '"',  # double high-reversed-9 quote
        "\u2033": '"',  # double prime
        "\u2010": "-",  # hyphen
        "\u2011": "-",  # non-breaking hyphen
        "\u2012": "-",  # figure dash
        "\u2013": "-",  # en dash
        "\u2014": "-",  # em dash
        "\u2015": "-",  # horizontal bar
        "\u2212": "-",  # minus sign
        "\u2026": "...",  # ellipsis
        "\u00a0": " ",  # no-break space
        "\u2007": " ",  # figure space
        "\u2009": " ",  # thin space
        "\u202f": " ",  # narrow no-break space
        "\u200b": None,  # zero-width space
        "\ufeff": None,  # zero-width no-break space (BOM)
    }
)

# GSM 03.38: the basic alphabet (one septet each) and its extension table (escape + septet).
_GSM_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = frozenset("^{}\\[~]|€\f")
