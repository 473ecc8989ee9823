"""One error hierarchy for the client library.

A connector raises these where the driver's ``connect()`` used to raise, as subclasses of the
driver's own ``OperationalError`` too (see :mod:`.driver_psycopg`, :mod:`.driver_pymysql`), so
existing ``except psycopg.OperationalError`` clauses and SQLAlchemy's connection handling keep
working. Messages name the secret, the stage and what went wrong, never a value.
"""

from __future__ import annotations

import keyturn_core


class ClientLibError(Exception):
    """Base class of every error raised by ``client_lib``."""


class ClientConfigurationError(ClientLibError, ValueError):
    """The library was called with settings that cannot work (a TLS mode without its CA)."""


class SecretValueError(ClientLibError, keyturn_core.SecretFormatError):
    """A secret's value is not usable as database credentials; names the key, never a value."""


class SecretCacheError(ClientLibError):
    """The secret could not be fetched and no usable cached value exists."""

    transient: bool = False
    """Whether trying again later may help (throttling, a 5xx, no connection)."""
    code: str = ""
    """Secrets Manager's error code, when it answered (``ResourceNotFoundException``...)."""

    def __init__(self, message: str, *, transient: bool = False, code: str = "") -> None:
        super().__init__(message)
        self.transient = transient
        self.code = code


class AuthenticationFailed(ClientLibError):
    """No stored version of the secret logged in (see :class:`~client_lib.FallbackPolicy`)."""


class AccountLocked(AuthenticationFailed):
    """The database says the account is locked or blocked: no password will do for now."""


__all__ = [
    "AccountLocked",
    "AuthenticationFailed",
    "ClientConfigurationError",
    "ClientLibError",
    "SecretCacheError",
    "SecretValueError",
]
