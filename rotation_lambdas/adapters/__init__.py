"""Database adapters: one small module per engine family."""

from __future__ import annotations

from .base import (
    DatabaseAdapter,
    RedactedDriverError,
    ServerMarker,
    UserAdministration,
    driver_message,
)

__all__ = [
    "DatabaseAdapter",
    "RedactedDriverError",
    "ServerMarker",
    "UserAdministration",
    "driver_message",
]
