"""Backups: ``backup`` writes one archive (``archive.py`` draws its layout) of the log
database, the config directory, the data dir's secrets and the outbox; ``restore`` brings a
fresh data dir and an empty database back to it. Redis is left out: what it holds is rebuilt.
"""

from service.backups.archive import FORMAT, BackupError, Manifest
from service.backups.making import Made, backup
from service.backups.restoring import Restored, restore

__all__ = ["FORMAT", "BackupError", "Made", "Manifest", "Restored", "backup", "restore"]
