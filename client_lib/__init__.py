"""Keyturn client library: database credentials from Secrets Manager that survive rotation.

This release holds the credentials model; the cache and rotation-aware connections follow.
"""

from __future__ import annotations

from .credentials import Credentials
from .errors import ClientLibError, SecretValueError

__all__ = ["ClientLibError", "Credentials", "SecretValueError"]
