"""Why a database login failed, read from the driver's error without trusting its language.

A server can answer in any language (PostgreSQL's ``lc_messages``, MariaDB's ``lc_messages``), so
the signals are ones translation does not touch, or that cover every translation:

- **PyMySQL**: the server's error number (1045 access denied, 4151/3118 account locked, ...).
- **psycopg**: at connect time psycopg gives no SQLSTATE. The few messages a login can end with
  are matched in every language PostgreSQL ships (:mod:`keyturn_core.pg_messages`, generated from
  the server's catalogs): refused credentials, a role that may not log in, a missing database,
  no CONNECT privilege, and a server that cannot take the session now (connection limits,
  starting up). Those last ones come *after* the password was accepted: they are not refusals.
  A message in no known language falls back to libpq's own record of whether the server asked
  for the password (``pgconn.used_password``): refused after asking, it was *probably* the
  credentials (:attr:`LoginFailure.PROBABLY_AUTHENTICATION`: act on it, do not remember it).
  A rejection by ``pg_hba.conf`` names that file, which no translation changes. After login,
  the SQLSTATE decides.

The drivers are imported only when an error of theirs is classified.
"""

from __future__ import annotations

import enum
import functools
import re
import ssl

_TLS_WORDS = ("ssl", "certificate", "tls")


class LoginFailure(enum.StrEnum):
    """Why a login failed."""

    AUTHENTICATION = "authentication"  # these credentials were refused: another version may work
    # Refused after the password was sent, with a message in no known language: most likely the
    # credentials (act on it), but not certain (do not remember it).
    PROBABLY_AUTHENTICATION = "probably-authentication"
    LOCKED = "locked"  # the account is locked or blocked: no password will do for now
    TLS = "tls"  # TLS could not be set up or verified (never retried in plaintext)
    NETWORK = "network"  # the server could not be reached or dropped the connection
    CONFIGURATION = "configuration"  # e.g. the database does not exist, a client module missing
    DENIED = "denied"  # logged in, but may not use the database (no CONNECT privilege)
    BUSY = "busy"  # the server cannot take the session now (connection limits, starting up)
    OTHER = "other"  # anything else (a failed statement after login)


# MySQL / MariaDB error numbers at login.
MYSQL_REFUSED = frozenset({1045, 1698, 1862})  # access denied (x2), password expired
MYSQL_LOCKED = frozenset(
    {3118, 3955, 4150, 4151}
)  # locked; too many failed logins (MySQL, MariaDB)
MYSQL_BAD_DATABASE = 1049
MYSQL_DATABASE_DENIED = 1044
MYSQL_BUSY = frozenset({1040, 1203, 1226})  # too many connections; per-user limits
MYSQL_SSL_ERROR = 2026
MYSQL_CANNOT_CONNECT = 2003
AUTH_SQLSTATES = frozenset({"28P01", "28000"})


def pymysql_failure(exc: BaseException) -> LoginFailure | None:
    """The failure a PyMySQL error means; None if ``exc`` is not a PyMySQL login error."""
    if isinstance(exc, RuntimeError) and "cryptography" in str(exc):
        # caching_sha2_password's full authentication without TLS needs RSA from 'cryptography'.
        return LoginFailure.CONFIGURATION
    import pymysql

    if not isinstance(exc, pymysql.MySQLError):
        return None
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    if code in MYSQL_REFUSED:
        return LoginFailure.AUTHENTICATION
    if code in MYSQL_LOCKED:
        return LoginFailure.LOCKED
    low = str(exc).lower()
    if (
        code == MYSQL_SSL_ERROR
        or isinstance(exc.__context__, ssl.SSLError)
        or (code == MYSQL_CANNOT_CONNECT and ("ssl" in low or "certificate" in low))
    ):
        return LoginFailure.TLS
    if code == MYSQL_BAD_DATABASE:
        return LoginFailure.CONFIGURATION
    if code == MYSQL_DATABASE_DENIED:
        return LoginFailure.DENIED
    if code in MYSQL_BUSY:
        return LoginFailure.BUSY
    if isinstance(exc, pymysql.OperationalError):
        return LoginFailure.NETWORK
    return LoginFailure.OTHER


_PG_KINDS = {
    "refused": LoginFailure.AUTHENTICATION,
    "cannot_log_in": LoginFailure.LOCKED,
    "no_database": LoginFailure.CONFIGURATION,
    "no_connect": LoginFailure.DENIED,
    "busy": LoginFailure.BUSY,
}


def _pattern(message: str) -> str:
    # The server's values stand where the catalogs say %s; a translation may wrap its lines.
    words = message.split()
    return r"\s+".join(
        r".{0,200}?".join(re.escape(part) for part in word.split("%s")) for word in words
    )


@functools.cache
def _pg_messages() -> list[tuple[re.Pattern[str], LoginFailure]]:
    """Compiled on the first failed login, not at import: a function's cold start skips it."""
    from .pg_messages import MESSAGES

    return [
        (re.compile("|".join(_pattern(m) for m in messages)), _PG_KINDS[kind])
        for kind, messages in MESSAGES.items()
    ]


_MAX_MESSAGE = 4000  # a login failure message is short; a hostile server's need not be


def postgres_message_failure(text: str) -> LoginFailure | None:
    """What a PostgreSQL login failure message means, in any language the server ships."""
    text = text[:_MAX_MESSAGE]
    for pattern, failure in _pg_messages():
        if pattern.search(text):
            return failure
    return None


def psycopg_failure(exc: BaseException) -> LoginFailure | None:
    """The failure a psycopg error means; None if ``exc`` is not a psycopg error."""
    import psycopg

    if not isinstance(exc, psycopg.Error):
        return None
    sqlstate = exc.sqlstate
    if sqlstate in AUTH_SQLSTATES:
        return LoginFailure.AUTHENTICATION
    if sqlstate == "3D000":
        return LoginFailure.CONFIGURATION
    if sqlstate is not None or not isinstance(exc, psycopg.OperationalError):
        return LoginFailure.OTHER
    text = str(exc)
    known = postgres_message_failure(text)
    if known is not None:
        return known
    if "pg_hba.conf" in text:
        return LoginFailure.AUTHENTICATION
    pgconn = exc.pgconn
    if pgconn is not None and pgconn.used_password:
        return LoginFailure.PROBABLY_AUTHENTICATION
    if any(word in text.lower() for word in _TLS_WORDS):
        return LoginFailure.TLS
    return LoginFailure.NETWORK


__all__ = [
    "AUTH_SQLSTATES",
    "MYSQL_BAD_DATABASE",
    "MYSQL_LOCKED",
    "MYSQL_REFUSED",
    "LoginFailure",
    "postgres_message_failure",
    "psycopg_failure",
    "pymysql_failure",
]
