"""The durable prompt log: SQLAlchemy models, Alembic migrations, the claim-before-send log.

SQLite file by default (``Settings.log_url``), the same code on PostgreSQL via psycopg::

    migrate(settings.log_url)                  # `hearth run` and `hearth migrate`
    log = PromptLog(make_engine(settings.log_url))
    if log.claim(Prompt.from_planned(send), clock.now()):
        ...                                    # send, then log.mark_sent(...)
"""

from service.storage.answers import AnswerLog, JournalEntry, OccurrenceAnswers
from service.storage.dashboards import DashboardToken, DashboardTokens
from service.storage.engine import make_engine, make_session_factory, writing
from service.storage.errors import StorageError, redact_url
from service.storage.feeds import FeedToken, FeedTokens, RitualVersions
from service.storage.models import Base, PartnerRow, PromptRow, PromptState, ReplyState
from service.storage.partner_states import PartnerState, PartnerStates, Unreachable
from service.storage.prompt_log import (
    DEFAULT_LEASE,
    Claim,
    DeliveryUpdate,
    Prompt,
    PromptLog,
    PromptRecord,
)
from service.storage.replies import (
    AnswerEffect,
    ChangeEffect,
    PartnerEffect,
    ReplyLog,
    ReplyRecord,
    Settlement,
)
from service.storage.schema import current_revision, head_revision, known_revisions, migrate

__all__ = [
    "DEFAULT_LEASE",
    "AnswerEffect",
    "AnswerLog",
    "Base",
    "ChangeEffect",
    "Claim",
    "DashboardToken",
    "DashboardTokens",
    "DeliveryUpdate",
    "FeedToken",
    "FeedTokens",
    "JournalEntry",
    "OccurrenceAnswers",
    "PartnerEffect",
    "PartnerRow",
    "PartnerState",
    "PartnerStates",
    "Prompt",
    "PromptLog",
    "PromptRecord",
    "PromptRow",
    "PromptState",
    "ReplyLog",
    "ReplyRecord",
    "ReplyState",
    "RitualVersions",
    "Settlement",
    "StorageError",
    "Unreachable",
    "current_revision",
    "head_revision",
    "known_revisions",
    "make_engine",
    "make_session_factory",
    "migrate",
    "redact_url",
    "writing",
]
