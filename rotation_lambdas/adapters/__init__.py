"""Database adapters: one small module per engine family."""

from __future__ import annotations

from .base import DatabaseAdapter, RedactedDriverError, driver_message

__all__ = ["DatabaseAdapter", "RedactedDriverError", "driver_message"]
