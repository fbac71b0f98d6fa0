"""The words Hearth sends: each kind's default texts, and how placeholders are filled.

Defaults stay in plain GSM-7 (no emoji, no curly quotes) and under 160 characters with
typical names, so each prompt costs one SMS segment. A couple's YAML may override any text;
placeholders are checked when the file loads, not when the text is sent.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from service.domain.kinds import RitualKind

__all__ = ["DEFAULT_TEXTS", "PLACEHOLDERS", "KindTexts", "check_template", "render"]

PLACEHOLDERS = {
    "partner": "the partner who receives the text",
    "other": "the other partner",
    "planner": "whose turn it is to plan (alternating rituals)",
    "lead": "how far ahead a reminder is, such as 'in 2 days'",
    "time": "the occurrence's local start time, such as '19:30'",
}


@dataclass(frozen=True, slots=True)
class KindTexts:
    prompt: str  # the SMS at the occurrence's start
    reminder: str  # an SMS `remind:` sends before the start
    title: str  # the calendar event's summary
    description: str  # the calendar event's description
    planner_reminder: str = ""  # the reminder to this occurrence's planner (alternating)


DEFAULT_TEXTS: dict[RitualKind, KindTexts] = {
    RitualKind.CHECK_IN: KindTexts(
        prompt=(
            "Hi {partner}, check-in time. Tell {other} one high and one low of your day - "
            "five minutes, no fixing. Reply with yours, or DONE."
        ),
        reminder="Your evening check-in with {other} is {lead}.",
        title="Check-in with {other}",
        description="Five minutes: one high point and one low point of the day each. Listen; "
        "don't fix.",
    ),
    RitualKind.DATE_NIGHT: KindTexts(
        prompt="Date night starts now, {partner}. Phones away - it's just you and {other}.",
        reminder="Date night with {other} is {lead} ({time}). {planner} is planning this one.",
        planner_reminder=(
            "Date night with {other} is {lead} ({time}) and it's your turn to plan, {partner}. "
            "Reply MOVE or SKIP if it needs to change."
        ),
        title="Date night ({planner} plans)",
        description="Protected time for the two of you. No phones, no chores, no "
        "logistics talk. {planner} plans this one.",
    ),
    RitualKind.PHONE_FREE: KindTexts(
        prompt="Phone-free time, {partner}: screens down for the next while. {other} is "
        "worth the full you. Reply DONE after if you like.",
        reminder="Phone-free time with {other} starts {lead}.",
        title="Phone-free time",
        description="Screens away, both of you. Talk, cook, walk, or just sit together.",
    ),
    RitualKind.GRATITUDE: KindTexts(
        prompt="{partner}, send {other} a short thank-you for something specific they did "
        "lately - name the thing. Reply DONE when it's sent.",
        reminder="A gratitude note for {other} is due {lead}.",
        title="Gratitude note for {other}",
        description="One specific thing {other} did, and what it meant to you.",
    ),
    RitualKind.AFFECTION: KindTexts(
        prompt="Morning, {partner}. A long hug or a real kiss for {other} before the day "
        "pulls you apart.",
        reminder="A small moment of affection with {other} {lead}.",
        title="Affection",
        description="A kiss, a six-second hug, a hand on the shoulder. Small and daily.",
    ),
    RitualKind.LISTENING: KindTexts(
        prompt="Mirror listening, {partner}: one of you talks, the other retells what they "
        "heard before answering. Then swap. Reply DONE or a note.",
        reminder="Mirror listening with {other} is {lead}.",
        title="Mirror listening",
        description="Speaker talks for a few minutes; listener retells it in their own "
        "words and asks 'did I get that right?' before replying. Then swap.",
    ),
    RitualKind.TOUCH_MAP: KindTexts(
        prompt="Touch map tonight, {partner}: slow, non-sexual closeness with {other}, at a "
        "pace that feels good to both. After, reply with a comfort level 1-5.",
        reminder="Touch map with {other} is {lead}.",
        title="Touch map",
        description="Take turns showing where and how you like to be touched, without "
        "expectations. Check in on comfort as you go.",
    ),
    RitualKind.CONVERSATION: KindTexts(
        prompt="Time for your honest conversation, {partner}: needs, boundaries, wishes. "
        "Start with something you appreciate about {other}.",
        reminder="Your honest conversation with {other} is {lead} ({time}).",
        title="Honest conversation",
        description="Each of you: one need, one boundary, one wish. Listen to understand, "
        "not to answer.",
    ),
    RitualKind.GROWTH: KindTexts(
        prompt="Goals check, {partner}: what is {other} working toward this month, and how "
        "can you help? Celebrate one win each.",
        reminder="Your goals check with {other} is {lead}.",
        title="Goals check",
        description="Share one win and one goal each, and one way the other can support it.",
    ),
    RitualKind.CUSTOM: KindTexts(
        prompt="Hi {partner}, it's time for your ritual with {other}. Reply DONE when it's done.",
        reminder="Your ritual with {other} is {lead}.",
        title="Ritual with {other}",
        description="A ritual you and {other} chose together.",
    ),
}


def check_template(text: str, allowed: frozenset[str] = frozenset(PLACEHOLDERS)) -> None:
    """Raise ``ValueError`` naming the first unknown or malformed placeholder in ``text``."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as e:
        raise ValueError(f"{e}; write a literal brace as {{{{ or }}}}") from None
    for name in fields:
        if name not in allowed:
            known = ", ".join("{" + p + "}" for p in sorted(allowed))
            raise ValueError(f"unknown placeholder {{{name}}}; use {known}")


def render(text: str, **values: str) -> str:
    """Fill placeholders; every name in ``PLACEHOLDERS`` must be given (empty is fine)."""
    return text.format_map({name: values.get(name, "") for name in PLACEHOLDERS})
