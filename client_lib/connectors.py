"""Connectors for psycopg 3 (sync and asyncio) and PyMySQL, ready to use.

Each driver is imported only when its factory is called, so an application installs just the
driver it uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from keyturn_core.login import LoginFailure, psycopg_failure, pymysql_failure

from .cache import SecretCache
from .connect import AsyncRotationAwareConnector, FallbackPolicy, RotationAwareConnector

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow
    from pymysql.connections import Connection as PyMySQLConnection
    from pymysql.cursors import Cursor


def is_psycopg_auth_failure(exc: BaseException) -> bool:
    """Whether psycopg's error is a refused login, in any server language."""
    return psycopg_failure(exc) in (
        LoginFailure.AUTHENTICATION,
        LoginFailure.PROBABLY_AUTHENTICATION,
    )


def is_pymysql_auth_failure(exc: BaseException) -> bool:
    """Whether PyMySQL's error is a refused login (error 1045 and its kin)."""
    return pymysql_failure(exc) is LoginFailure.AUTHENTICATION


def _options(driver: Any, kwargs: dict[str, Any], policy: FallbackPolicy | None) -> dict[str, Any]:
    """The connector options a driver module gives, once the arguments are checked."""
    driver.application_arguments(kwargs)  # refuse what only the secret may decide, now
    return {
        "policy": policy,
        "defaults": driver.secret_defaults(kwargs),
        "errors": driver.ERRORS,
        "target": driver.server_of(kwargs),
    }


def psycopg_connector(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connection_class: type[psycopg.Connection[TupleRow]] | None = None,
    **kwargs: Any,
) -> RotationAwareConnector[psycopg.Connection[TupleRow]]:
    """psycopg 3 connections with the secret's credentials and TLS.

    ``kwargs`` go to ``psycopg.connect`` and override the secret (``host``, ``port``,
    ``dbname``, ``sslmode``, ``sslrootcert``, ``autocommit``, ``prepare_threshold``...), except the
    user and password. Usage::

        pg = psycopg_connector(cache, "prod/app/pg", sslrootcert="/etc/ssl/rds-bundle.pem")
        with pg.connect() as conn:
            conn.execute("SELECT 1")
    """
    import psycopg

    from . import driver_psycopg as driver

    options = _options(driver, kwargs, policy)
    connect = driver.connect_function(connection_class or psycopg.Connection, kwargs)
    return RotationAwareConnector(cache, secret_id, connect, psycopg_failure, **options)


def psycopg_async_connector(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connection_class: type[psycopg.AsyncConnection[TupleRow]] | None = None,
    **kwargs: Any,
) -> AsyncRotationAwareConnector[psycopg.AsyncConnection[TupleRow]]:
    """psycopg 3 ``AsyncConnection``s; ``kwargs`` as for :func:`psycopg_connector`."""
    import psycopg

    from . import driver_psycopg as driver

    options = _options(driver, kwargs, policy)
    connect = driver.async_connect_function(connection_class or psycopg.AsyncConnection, kwargs)
    return AsyncRotationAwareConnector(cache, secret_id, connect, psycopg_failure, **options)


def pymysql_connector(
    cache: SecretCache, secret_id: str, *, policy: FallbackPolicy | None = None, **kwargs: Any
) -> RotationAwareConnector[PyMySQLConnection[Cursor]]:
    """PyMySQL connections with the secret's credentials and TLS.

    ``kwargs`` go to ``pymysql.connect`` and override the secret (``host``, ``port``,
    ``database``, ``ssl_ca``, ``ssl``, ``connect_timeout``...), except the user and password.
    """
    from . import driver_pymysql as driver

    options = _options(driver, kwargs, policy)
    return RotationAwareConnector(
        cache, secret_id, driver.connect_function(kwargs), pymysql_failure, **options
    )


__all__ = [
    "is_psycopg_auth_failure",
    "is_pymysql_auth_failure",
    "psycopg_async_connector",
    "psycopg_connector",
    "pymysql_connector",
]
