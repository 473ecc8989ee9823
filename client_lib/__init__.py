"""Keyturn client library: database credentials from Secrets Manager that survive rotation.

The secret cache, credentials, and rotation-aware connect for PyMySQL and psycopg 3.
"""

from __future__ import annotations

from .cache import CacheStats, SecretCache, SecretCacheError, SecretValue
from .connect import (
    AsyncRotationAwareConnector,
    AuthenticationFailed,
    ConnectStats,
    FallbackPolicy,
    RotationAwareConnector,
    is_psycopg_auth_failure,
    is_pymysql_auth_failure,
    psycopg_async_connector,
    psycopg_connector,
    pymysql_connector,
)
from .credentials import Credentials
from .errors import ClientLibError, SecretValueError
from .pools import psycopg_async_pool, psycopg_pool, sqlalchemy_engine
from .sources import AwsCachingSource

__all__ = [
    "AsyncRotationAwareConnector",
    "AuthenticationFailed",
    "AwsCachingSource",
    "CacheStats",
    "ClientLibError",
    "ConnectStats",
    "Credentials",
    "FallbackPolicy",
    "RotationAwareConnector",
    "SecretCache",
    "SecretCacheError",
    "SecretValue",
    "SecretValueError",
    "is_psycopg_auth_failure",
    "is_pymysql_auth_failure",
    "psycopg_async_connector",
    "psycopg_async_pool",
    "psycopg_connector",
    "psycopg_pool",
    "pymysql_connector",
    "sqlalchemy_engine",
]
