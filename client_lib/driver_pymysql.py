"""PyMySQL: connection arguments from a secret, and errors that are PyMySQL's own.

TLS comes from the secret exactly as the rotation functions take it (default ``verify-full`` with
the platform's trust store), always as an explicit TLS context unless TLS is disabled: PyMySQL's
own "preferred" mode would continue in plaintext when the server has no TLS. The application's
keyword arguments override anything but the user and password: ``ssl_ca``, ``ssl_cert``,
``ssl_key``, ``ssl_verify_cert`` and ``ssl_verify_identity`` shape the context, ``ssl`` replaces
it, ``ssl_disabled=True`` means plaintext.
This module imports PyMySQL: the client library loads it only for PyMySQL connectors.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pymysql
from pymysql.connections import Connection

from keyturn_core import TlsMode
from keyturn_core.tls import ssl_context

from . import errors
from .connect import DriverErrors
from .credentials import (
    Credentials,
    defaults_from_arguments,
    refuse_secret_arguments,
    server_of_arguments,
)

DEFAULT_TLS_MODE = TlsMode.VERIFY_FULL  # the rotation functions' default
DEFAULT_CONNECT_TIMEOUT = 10.0  # PyMySQL's own
SECRET_KEYS = ("user", "password", "passwd")
ENGINE = "mysql"  # what a secret without "engine" is, for this driver
DATABASE_KEY = "database"  # the driver's name for the database
_TLS_ARGUMENTS = (
    "ssl",
    "ssl_disabled",
    "ssl_ca",
    "ssl_cert",
    "ssl_key",
    "ssl_key_password",
    "ssl_verify_cert",
    "ssl_verify_identity",
)
_FROM_THE_SECRET = ("host", "port", "database", "db", *_TLS_ARGUMENTS)
_ACCESS_DENIED = 1045
_CANNOT_CONNECT = 2003


class AuthenticationFailed(errors.AuthenticationFailed, pymysql.err.OperationalError):
    """No stored version of the secret logged in; also a PyMySQL ``OperationalError`` (1045)."""

    def __init__(self, message: str) -> None:
        super().__init__(_ACCESS_DENIED, message)

    def __str__(self) -> str:
        return str(self.args[1])


class AccountLocked(errors.AccountLocked, pymysql.err.OperationalError):
    """The account is locked or blocked; also a PyMySQL ``OperationalError`` (1045)."""

    def __init__(self, message: str) -> None:
        super().__init__(_ACCESS_DENIED, message)

    def __str__(self) -> str:
        return str(self.args[1])


class SecretUnavailable(errors.SecretCacheError, pymysql.err.OperationalError):
    """The secret could not be fetched; also a PyMySQL ``OperationalError`` (2003)."""

    def __init__(self, message: str, *, transient: bool = False, code: str = "") -> None:
        Exception.__init__(self, _CANNOT_CONNECT, message)
        self.transient, self.code = transient, code

    def __str__(self) -> str:
        return str(self.args[1])


class SecretInvalid(errors.SecretValueError, pymysql.err.OperationalError):
    """The secret is not usable as credentials; also a PyMySQL ``OperationalError`` (2003)."""

    def __init__(self, message: str) -> None:
        Exception.__init__(self, _CANNOT_CONNECT, message)

    def __str__(self) -> str:
        return str(self.args[1])


for _cls in (AuthenticationFailed, AccountLocked, SecretUnavailable, SecretInvalid):
    _cls.__module__ = "client_lib"
ERRORS = DriverErrors(AuthenticationFailed, AccountLocked, SecretUnavailable, SecretInvalid)


def application_arguments(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The application's connection arguments: ``None`` where the secret sets the value (host,
    database, TLS) and ``ssl_disabled=False`` left out (they mean "not set"), PyMySQL's ``db``
    read as ``database``; refuses the user and the password."""
    given = {k: v for k, v in kwargs.items() if v is not None or k not in _FROM_THE_SECRET}
    if given.get("ssl_disabled") is False:
        del given["ssl_disabled"]
    if isinstance(given.get("ssl"), dict):
        given["ssl"] = {k: v for k, v in given["ssl"].items() if v is not None}
    if not given.get("ssl", True):
        del given["ssl"]  # an empty dict (or one of None values): not set
    if "db" in given:
        given.setdefault("database", given.pop("db"))
    refuse_secret_arguments(given, SECRET_KEYS)
    return given


def secret_defaults(kwargs: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], dict[str, Any]]:
    """What a secret without them takes from the connection arguments: the engine PyMySQL
    implies, the host, port and database."""

    def defaults(overrides: Mapping[str, Any]) -> dict[str, Any]:
        given = application_arguments({**kwargs, **overrides})
        return defaults_from_arguments(given, ENGINE, DATABASE_KEY)

    return defaults


def _tls_mode(secret_mode: TlsMode, given: Mapping[str, Any]) -> TlsMode:
    """The secret's mode, as the application's ``ssl_verify_*`` arguments change it."""
    mode = secret_mode
    verify_cert, verify_identity = given.get("ssl_verify_cert"), given.get("ssl_verify_identity")
    if verify_identity:
        return TlsMode.VERIFY_FULL
    if verify_cert is False:
        return TlsMode.REQUIRE  # TLS still: never PyMySQL's fallback to plaintext
    if verify_identity is False and mode is TlsMode.VERIFY_FULL:
        mode = TlsMode.VERIFY_CA
    if verify_cert and mode in (TlsMode.DISABLE, TlsMode.REQUIRE):
        mode = TlsMode.VERIFY_CA
    return mode


def server_of(
    kwargs: Mapping[str, Any],
) -> Callable[[Credentials, Mapping[str, Any]], tuple[str, object]]:
    return server_of_arguments(kwargs, application_arguments)


def connection_params(
    creds: Credentials, kwargs: Mapping[str, Any], timeout: float | None
) -> dict[str, Any]:
    """``pymysql.connect`` arguments: the secret's host, port, database and TLS, overridden by the
    application's ``kwargs``, then the secret's user and password and a connect timeout within
    ``timeout``.

    TLS is always an explicit context (PyMySQL then requires TLS) unless the secret or the
    application's ``ssl_disabled=True`` disables it, or the application gives its own ``ssl``:
    the ``ssl_*`` arguments shape that context (``ssl_ca``, ``ssl_cert``/``ssl_key``,
    ``ssl_verify_cert``, ``ssl_verify_identity``) rather than hand PyMySQL its "preferred" mode,
    which continues in plaintext.
    """
    given = application_arguments(kwargs)
    tls = {key: given.pop(key) for key in _TLS_ARGUMENTS if key in given}
    params: dict[str, Any] = {"host": creds.host, "port": creds.port, "database": creds.dbname}
    if tls.get("ssl_disabled"):
        params["ssl_disabled"] = True
    elif "ssl" in tls:
        params["ssl"] = tls["ssl"]  # the application's own context or dict: TLS required
    else:
        mode = _tls_mode(creds.tls_mode or DEFAULT_TLS_MODE, tls)
        ctx = ssl_context(mode, tls.get("ssl_ca"))
        if ctx is None:
            params["ssl_disabled"] = True
        else:
            if "ssl_cert" in tls:
                ctx.load_cert_chain(
                    tls["ssl_cert"], tls.get("ssl_key"), tls.get("ssl_key_password")
                )
            params["ssl"] = ctx
    params.update(given)
    params["user"], params["password"] = creds.username, creds.password
    if timeout is not None:
        wanted = float(params.get("connect_timeout") or DEFAULT_CONNECT_TIMEOUT)
        params["connect_timeout"] = max(0.1, min(wanted, timeout))
    return params


def connect_function(
    kwargs: Mapping[str, Any],
) -> Callable[[Credentials, float, Mapping[str, Any]], Connection[Any]]:
    """A function opening a PyMySQL connection with a secret's credentials."""

    def connect(
        creds: Credentials, timeout: float, overrides: Mapping[str, Any]
    ) -> Connection[Any]:
        params = connection_params(creds, {**kwargs, **overrides}, timeout)
        connect_params = dict(params)
        # connect_timeout bounds only the TCP connect: the handshake and the login read and
        # write with these, so the whole attempt fits its time; the application's own values
        # apply once connected.
        after = {key: params.get(key) for key in ("read_timeout", "write_timeout")}
        for key, value in after.items():
            connect_params[key] = timeout if value is None else min(float(value), timeout)
        conn: Connection[Any] = pymysql.connect(**connect_params)
        # PyMySQL applies these before each read and write (attributes of its own).
        setattr(conn, "_read_timeout", after["read_timeout"])  # noqa: B010
        setattr(conn, "_write_timeout", after["write_timeout"])  # noqa: B010
        return conn

    return connect
