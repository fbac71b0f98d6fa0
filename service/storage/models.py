"""The prompt log's tables as SQLAlchemy models: one row per send, keyed by its event id.

A row records what was sent to whom and when, never what was said or where: no message body
(it can be re-rendered from the couple's file) and no phone number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    DateTime,
    Dialect,
    Enum,
    Index,
    Integer,
    MetaData,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "AnswerRow",
    "Base",
    "ChangeRow",
    "DashboardTokenRow",
    "FeedTokenRow",
    "PartnerRow",
    "PromptRow",
    "PromptState",
    "ReplyRow",
    "ReplyState",
    "RitualVersionRow",
    "UTCDateTime",
]

# Constraint names fixed by convention, so the models, the migrations and both databases agree.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class PromptState(StrEnum):
    """Where a send stands: ``pending`` (claimed, not settled), then one final state."""

    PENDING = "pending"
    SENT = "sent"  # the provider accepted it
    FAILED = "failed"  # permanently: invalid number, opted out at the provider, …
    MISSED = "missed"  # never sent: too late, paused, opted out in Hearth
    # The provider may have taken it and Hearth cannot tell (a worker died, a timeout):
    # never sent again blindly; reported until the provider's own record settles it.
    UNKNOWN = "unknown"

    @property
    def is_final(self) -> bool:
        """Sent, failed and missed never change again."""
        return self is not PromptState.PENDING


class UTCDateTime(TypeDecorator[datetime]):
    """An instant: written from an aware datetime, read back aware in UTC on every database.

    PostgreSQL keeps it as ``timestamptz``. SQLite has no time zones, so the value is stored
    as naive UTC text and given its zone back on reading. A naive datetime is refused.
    """

    impl = DateTime
    cache_ok = True

    def __init__(self) -> None:
        super().__init__(timezone=True)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: the prompt log stores instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def _values(states: type[PromptState]) -> list[str]:
    return [s.value for s in states]


class PromptRow(Base):
    """One send (a prompt or a reminder to one partner), claimed before it goes out."""

    __tablename__ = "prompts"
    # A reply looks for the texts recently sent to its partner.
    __table_args__ = (Index("ix_prompts_partner", "partner", "couple", "sent_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # <occurrence id>/<purpose>/<partner>: unique, so a duplicated message cannot send twice.
    event_id: Mapped[str] = mapped_column(Text, unique=True)
    occurrence_id: Mapped[str] = mapped_column(Text)
    couple: Mapped[str] = mapped_column(Text)
    ritual: Mapped[str] = mapped_column(Text)
    partner: Mapped[str] = mapped_column(Text)  # the partner's key, not their number
    purpose: Mapped[str] = mapped_column(Text)  # "prompt", "reminder-2d", …
    state: Mapped[PromptState] = mapped_column(
        Enum(
            PromptState,
            name="state",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_values,
            validate_strings=True,
        )
    )
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When the current claim was taken; None once released for an immediate retry.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer)  # claims taken so far
    # A released send's next try (quiet hours end, a retry's backoff): until then it waits
    # on purpose, and the reconciler leaves it alone.
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(Text)  # e.g. Twilio's MessageSid
    error: Mapped[str | None] = mapped_column(Text)  # the last error, phone numbers removed
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # What the carrier said last (a DeliveryStatus, from status callbacks) and its error code.
    delivery_status: Mapped[str | None] = mapped_column(Text)
    delivery_code: Mapped[int | None] = mapped_column(Integer)
    delivery_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    segments: Mapped[int | None] = mapped_column(Integer)  # SMS segments the text took
    # ``words_digest`` of the words the last attempt handed (or may have handed) the provider.
    words_digest: Mapped[str | None] = mapped_column(Text)


class PartnerRow(Base):
    """What a partner has told Hearth about receiving texts: opted out, or paused until when.

    Keyed by couple and partner key; a partner with no row receives texts.
    """

    __tablename__ = "partners"

    couple: Mapped[str] = mapped_column(Text, primary_key=True)
    partner: Mapped[str] = mapped_column(Text, primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    paused_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # A number that cannot take texts (the error code that said so, when, and a keyed
    # fingerprint of that number, never the number): lifted by a new number in the file.
    unreachable_code: Mapped[int | None] = mapped_column(Integer)
    unreachable_number: Mapped[str | None] = mapped_column(Text)
    unreachable_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ReplyState(StrEnum):
    """``received`` (stored by the webhook) → ``handled`` (its effects committed) →
    ``confirmed`` (the confirmation text was accepted, or none was due)."""

    RECEIVED = "received"
    HANDLED = "handled"
    CONFIRMED = "confirmed"


def _reply_values(states: type[ReplyState]) -> list[str]:
    return [s.value for s in states]


class ReplyRow(Base):
    """One inbound text, stored raw before the webhook answers, keyed by Twilio's MessageSid.

    ``raw`` is the webhook's form as JSON (number and body included): it is the partner's
    own words, kept so a reply is never lost and can be handled again; it never goes to logs.
    """

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_sid: Mapped[str] = mapped_column(Text, unique=True)
    raw: Mapped[str] = mapped_column(Text)
    state: Mapped[ReplyState] = mapped_column(
        Enum(
            ReplyState,
            name="reply_state",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=_reply_values,
            validate_strings=True,
        ),
        index=True,
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Filled when handled: who it was from and what it did (no body, no number).
    couple: Mapped[str | None] = mapped_column(Text)
    partner: Mapped[str | None] = mapped_column(Text)
    verb: Mapped[str | None] = mapped_column(Text)
    occurrence_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str | None] = mapped_column(Text)  # a short code: "done", "no-target", …
    confirmation: Mapped[str | None] = mapped_column(Text)  # the text to send back, if any
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    provider_id: Mapped[str | None] = mapped_column(Text)  # the confirmation's MessageSid


class AnswerRow(Base):
    """A partner's answer to one occurrence: done (with a note), a journal entry, or a skip.

    One row per reply at most (``reply_sid`` is unique), so a reply handled twice answers once.
    """

    __tablename__ = "answers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reply_sid: Mapped[str] = mapped_column(Text, unique=True)
    couple: Mapped[str] = mapped_column(Text)
    ritual: Mapped[str] = mapped_column(Text)
    occurrence_id: Mapped[str] = mapped_column(Text, index=True)
    partner: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)  # "done", "journal" or "skipped"
    note: Mapped[str] = mapped_column(Text)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ChangeRow(Base):
    """A skipped or moved occurrence: the schedule and the feed apply it from here."""

    __tablename__ = "occurrence_changes"

    occurrence_id: Mapped[str] = mapped_column(Text, primary_key=True)
    couple: Mapped[str] = mapped_column(Text, index=True)
    ritual: Mapped[str] = mapped_column(Text)
    skipped: Mapped[bool] = mapped_column(Boolean)
    moved_to: Mapped[datetime | None] = mapped_column(UTCDateTime())
    by_partner: Mapped[str] = mapped_column(Text)
    reply_sid: Mapped[str | None] = mapped_column(Text)
    revision: Mapped[int] = mapped_column(Integer)  # raised on every change: the feed's SEQUENCE
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FeedTokenRow(Base):
    """A partner's current feed token, as a SHA-256 hash, and the random ``nonce`` it was
    made from with the service's secret (``service/capabilities.py``): the token is never
    stored, yet ``hearth feed urls`` can show it again. ``generation`` counts rotations."""

    __tablename__ = "feed_tokens"

    couple: Mapped[str] = mapped_column(Text, primary_key=True)
    partner: Mapped[str] = mapped_column(Text, primary_key=True)
    generation: Mapped[int] = mapped_column(Integer)
    # 128 random bits, hex. NULL: a token an older Hearth derived (one still running during
    # an upgrade may write such a row): never served, and replaced by the next publish.
    nonce: Mapped[str | None] = mapped_column(Text)
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DashboardTokenRow(Base):
    """A partner's current dashboard token, as a SHA-256 hash, and the random ``nonce`` it
    was made from with the service's secret (``service/dashboard/tokens.py``): the token is
    never stored, yet ``hearth dashboard urls`` can show it again."""

    __tablename__ = "dashboard_tokens"

    couple: Mapped[str] = mapped_column(Text, primary_key=True)
    partner: Mapped[str] = mapped_column(Text, primary_key=True)
    nonce: Mapped[str] = mapped_column(Text)  # 128 random bits, hex
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RitualVersionRow(Base):
    """The version of a ritual's calendar content (texts, duration, alarms): the feed's
    SEQUENCE rises and its DTSTAMP moves when it changes."""

    __tablename__ = "ritual_versions"

    couple: Mapped[str] = mapped_column(Text, primary_key=True)
    ritual: Mapped[str] = mapped_column(Text, primary_key=True)
    content_hash: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
