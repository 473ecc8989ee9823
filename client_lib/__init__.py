"""Keyturn client library: database credentials from Secrets Manager that survive rotation.

This release holds the credentials model and the secret cache; rotation-aware connections follow.
"""

from __future__ import annotations

from .cache import CacheStats, SecretCache, SecretCacheError, SecretValue
from .credentials import Credentials
from .errors import ClientLibError, SecretValueError
from .sources import AwsCachingSource

__all__ = [
    "AwsCachingSource",
    "CacheStats",
    "ClientLibError",
    "Credentials",
    "SecretCache",
    "SecretCacheError",
    "SecretValue",
    "SecretValueError",
]
