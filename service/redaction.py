"""What never reaches a log line, as plain string functions every log path applies.

- Phone numbers are masked to their first two digits and last three (``+44••••••789``):
  enough to tell two partners apart in an incident, not enough to text them. Numbers are
  found with their ``+`` (E.164, also URL-encoded as ``%2B`` and with spaces or dashes).
- Capability paths: anything under ``/feeds/`` or ``/c/`` (the secret is the URL itself),
  whatever follows it (a wrong extension, doubled slashes, a query string), becomes
  ``/feeds/***`` or ``/c/***``.
- Config values: an error about a couple file quotes the bad value for the person who
  edits the file (``hearth validate`` shows it); a log line keeps only the place and the
  rule (``rituals[0].schedule: '…' is not a schedule``), since a bad value may be a phone
  number or a text's body typed in the wrong place.

Message bodies, journal text and tokens are never passed to a logger in the first place;
these functions are the net under that rule, not the rule.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.domain.errors import CoupleFileInvalid, Issue

__all__ = [
    "MASK",
    "mask_phone",
    "redact_capability_paths",
    "redact_failure",
    "redact_issue",
    "redact_quoted",
    "scrub",
]

MASK = "••••••"

# A + (or its URL encoding) and 7 to 15 digits, which may be grouped by spaces, dots,
# dashes or parentheses as people write them.
_PHONE = re.compile(r"(?:\+|%2[bB])(\d(?:[\s().-]{0,2}\d){6,14})(?!\d)")
# A path under /feeds/ or /c/ where a path may start: at the start, after a space, quote,
# bracket or '=', or after a scheme and host. A file path (".../service/feeds/x.py") is not
# one: there a word comes before the slash.
_CAPABILITY = re.compile(
    r"""(?P<before>^|[\s"'(\[=,]|[a-z][a-z0-9+.-]*://[^/\s"']*)/+(?P<kind>feeds|c)(?:/|\?|\.|%2[fF])[^\s"'<>]*""",
    re.IGNORECASE,
)
# A quoted literal as repr() writes it; group "hint" is set when our own wording gives an
# example ("write it like '19:30'", "such as 'Europe/Berlin'"), which is kept.
_QUOTED = re.compile(r"""(?P<hint>(?:like|such as) )?(?P<q>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def mask_phone(digits: str) -> str:
    """``447700900789`` (digits only, or as written) -> ``+44••••••789``."""
    only = re.sub(r"\D", "", digits)
    return f"+{only[:2]}{MASK}{only[-3:]}"


def redact_capability_paths(text: str) -> str:
    """Every path under ``/feeds/`` or ``/c/`` rewritten to ``/feeds/***`` or ``/c/***``."""
    return _CAPABILITY.sub(lambda m: f"{m['before']}/{m['kind'].lower()}/***", text)


def scrub(text: str) -> str:
    """Phone numbers masked and capability paths redacted: applied to every log string."""
    if "+" in text or "%2" in text:
        text = _PHONE.sub(lambda m: mask_phone(m[1]), text)
    if "/" in text:
        text = redact_capability_paths(text)
    return text


def redact_quoted(message: str) -> str:
    """Quoted values in a config message elided (``'…'``), our own examples kept."""
    return _QUOTED.sub(lambda m: m[0] if m["hint"] else "'…'", message)


def redact_issue(issue: Issue) -> str:
    """``file:line:col: path: message`` with the message's quoted values elided."""
    return f"{issue.file}:{issue.line}:{issue.column}: {issue.path}: {redact_quoted(issue.message)}"


def redact_failure(failure: CoupleFileInvalid) -> str:
    """Every issue of a bad couple file, one per line, values elided."""
    return "\n".join(redact_issue(issue) for issue in failure.issues)
