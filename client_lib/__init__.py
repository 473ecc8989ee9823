"""Keyturn client library: database credentials from Secrets Manager that survive rotation.

The secret cache, credentials, and rotation-aware connect for psycopg 3 (sync and asyncio) and
PyMySQL, psycopg_pool and SQLAlchemy. Each driver is imported only when it is used.
"""

from __future__ import annotations

from .cache import CacheStats, SecretCache, SecretValue
from .connect import (
    AsyncRotationAwareConnector,
    ConnectStats,
    DriverErrors,
    RotationAwareConnector,
)
from .connectors import (
    is_psycopg_auth_failure,
    is_pymysql_auth_failure,
    psycopg_async_connector,
    psycopg_connector,
    pymysql_connector,
)
from .credentials import Credentials
from .errors import (
    AccountLocked,
    AuthenticationFailed,
    ClientConfigurationError,
    ClientLibError,
    SecretCacheError,
    SecretValueError,
)
from .fallback import FallbackPolicy
from .pools import psycopg_async_pool, psycopg_pool, sqlalchemy_async_engine, sqlalchemy_engine
from .sources import AwsCachingSource, SecretSource

__all__ = [
    "AccountLocked",
    "AsyncRotationAwareConnector",
    "AuthenticationFailed",
    "AwsCachingSource",
    "CacheStats",
    "ClientConfigurationError",
    "ClientLibError",
    "ConnectStats",
    "Credentials",
    "DriverErrors",
    "FallbackPolicy",
    "RotationAwareConnector",
    "SecretCache",
    "SecretCacheError",
    "SecretSource",
    "SecretValue",
    "SecretValueError",
    "is_psycopg_auth_failure",
    "is_pymysql_auth_failure",
    "psycopg_async_connector",
    "psycopg_async_pool",
    "psycopg_connector",
    "psycopg_pool",
    "pymysql_connector",
    "sqlalchemy_async_engine",
    "sqlalchemy_engine",
]
