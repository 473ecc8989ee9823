"""psycopg 3: connection arguments from a secret, and errors that are psycopg's own.

TLS comes from the secret exactly as the rotation functions take it (``sslmode`` / ``ssl``, default
``verify-full`` with the platform's trust store), and the application's keyword arguments (or
``conninfo``) override anything but the user and password, which always come from the secret.
This module imports psycopg: the client library loads it only for psycopg connectors.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import psycopg
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict

from keyturn_core import TlsMode, libpq_tls_params
from keyturn_core.tls import SYSTEM_TRUST_STORE

from . import errors
from .connect import DriverErrors
from .credentials import (
    Credentials,
    defaults_from_arguments,
    refuse_secret_arguments,
    server_of_arguments,
)

DEFAULT_TLS_MODE = TlsMode.VERIFY_FULL  # the rotation functions' default
_MIN_TIMEOUT = 2  # libpq treats connect_timeout below 2 seconds as 2
SECRET_KEYS = ("user", "password")
ENGINE = "postgres"  # what a secret without "engine" is, for this driver
DATABASE_KEY = "dbname"  # the driver's name for the database


class AuthenticationFailed(errors.AuthenticationFailed, psycopg.OperationalError):
    """No stored version of the secret logged in; also a ``psycopg.OperationalError``."""


class AccountLocked(errors.AccountLocked, psycopg.OperationalError):
    """The account is locked or blocked; also a ``psycopg.OperationalError``."""


class SecretUnavailable(errors.SecretCacheError, psycopg.OperationalError):
    """The secret could not be fetched; also a ``psycopg.OperationalError``."""

    def __init__(self, message: str, *, transient: bool = False, code: str = "") -> None:
        psycopg.OperationalError.__init__(self, message)  # its pgconn, diag... are None
        self.transient, self.code = transient, code


class SecretInvalid(errors.SecretValueError, psycopg.OperationalError):
    """The secret is not usable as credentials; also a ``psycopg.OperationalError``."""

    def __init__(self, message: str) -> None:
        psycopg.OperationalError.__init__(self, message)  # ValueError's would skip it


def scrub(exc: BaseException) -> None:
    """Forget the connection a failed connect's error keeps, once the error is classified:
    libpq's record of it holds the password tried (``exc.pgconn.password`` and its ``info``)."""
    if isinstance(exc, psycopg.Error):
        exc._pgconn = None


for _cls in (AuthenticationFailed, AccountLocked, SecretUnavailable, SecretInvalid):
    _cls.__module__ = "client_lib"  # tracebacks name the public package
ERRORS = DriverErrors(AuthenticationFailed, AccountLocked, SecretUnavailable, SecretInvalid, scrub)
_PLAINTEXT_FALLBACK = ("prefer", "allow")
_FROM_THE_SECRET = ("host", "port", "dbname", "sslmode", "sslrootcert", "conninfo")


def application_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The application's connection arguments, a ``conninfo`` string among them merged in and
    ``None`` left out where the secret sets the value (the TLS mode, the host...); refuses the
    user, the password and the modes that continue in plaintext."""
    # None leaves what the secret sets as it is (psycopg would drop it, and libpq fall back to
    # its own defaults: sslmode "prefer"); elsewhere None means something (prepare_threshold).
    given = {k: v for k, v in kwargs.items() if v is not None or k not in _FROM_THE_SECRET}
    conninfo = given.pop("conninfo", "") or ""
    given = {**conninfo_to_dict(conninfo), **given}
    refuse_secret_arguments(given, SECRET_KEYS)
    if str(given.get("sslmode", "")).strip().lower() in _PLAINTEXT_FALLBACK:
        raise errors.ClientConfigurationError(
            f"sslmode '{given['sslmode']}' continues in plaintext when TLS fails: use 'require' "
            "or a verify mode, or 'disable' to mean plaintext"
        )
    return given


def secret_defaults(kwargs: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """What a secret without them takes from the connection arguments (the connector's, a
    pool's, a call's): the engine psycopg implies, the host, port and database."""

    def defaults(overrides: Mapping[str, Any]) -> dict[str, Any]:
        given = application_arguments({**kwargs, **overrides})
        return defaults_from_arguments(given, ENGINE, DATABASE_KEY)

    return defaults


def server_of(
    kwargs: Mapping[str, Any],
) -> Callable[[Credentials, Mapping[str, Any]], tuple[str, object]]:
    return server_of_arguments(kwargs, application_arguments)


def connection_params(
    creds: Credentials, kwargs: Mapping[str, Any], timeout: float | None
) -> dict[str, Any]:
    """``psycopg.connect`` arguments: the secret's host, port, database and TLS, overridden by the
    application's ``kwargs`` (and a ``conninfo`` string among them), then the secret's user and
    password and a connect timeout within ``timeout``."""
    given = application_arguments(kwargs)
    params: dict[str, Any] = {
        "host": creds.host,
        "port": creds.port,
        "dbname": creds.dbname or "postgres",
        **libpq_tls_params(creds.tls_mode or DEFAULT_TLS_MODE, None),
        **given,
    }
    if params.get("sslrootcert") == SYSTEM_TRUST_STORE and "sslrootcert" not in given:
        if params.get("sslmode") == TlsMode.VERIFY_CA.value:
            raise SecretInvalid(
                "the secret asks for sslmode 'verify-ca', which needs sslrootcert (a CA bundle "
                "file): libpq allows the system trust store only with 'verify-full'"
            )
        if params.get("sslmode") != TlsMode.VERIFY_FULL.value or pq.version() < 160000:
            del params["sslrootcert"]  # libpq before 16 reads "system" as a file name
    params["user"], params["password"] = creds.username, creds.password
    if timeout is not None:
        wanted = float(params.get("connect_timeout") or timeout)
        params["connect_timeout"] = max(_MIN_TIMEOUT, math.ceil(min(wanted, timeout)))
    return params


def connect_function(
    connection_class: type[psycopg.Connection[Any]], kwargs: Mapping[str, Any]
) -> Callable[[Credentials, float, Mapping[str, Any]], psycopg.Connection[Any]]:
    """A function opening a ``connection_class`` connection with a secret's credentials."""
    # The base implementation, bound to ``connection_class``: a pool's subclass overrides
    # connect() to come back through the connector.
    base = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]

    def connect(
        creds: Credentials, timeout: float, overrides: Mapping[str, Any]
    ) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] = base(
            connection_class, **connection_params(creds, {**kwargs, **overrides}, timeout)
        )
        return conn

    return connect


def async_connect_function(
    connection_class: type[psycopg.AsyncConnection[Any]], kwargs: Mapping[str, Any]
) -> Callable[[Credentials, float, Mapping[str, Any]], Awaitable[psycopg.AsyncConnection[Any]]]:
    """The same for ``AsyncConnection``."""
    base = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]

    async def connect(
        creds: Credentials, timeout: float, overrides: Mapping[str, Any]
    ) -> psycopg.AsyncConnection[Any]:
        conn: psycopg.AsyncConnection[Any] = await base(
            connection_class, **connection_params(creds, {**kwargs, **overrides}, timeout)
        )
        return conn

    return connect
