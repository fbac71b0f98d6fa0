"""The scheduler: future events in Redis, claimed once each and handed to Dramatiq."""

from service.scheduler.store import Claimed, ScheduledEvent, ScheduleStore

__all__ = ["Claimed", "ScheduleStore", "ScheduledEvent"]
