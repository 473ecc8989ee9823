"""The secret as the rotation functions read it.

The format and its parser live in :mod:`keyturn_core.secret`, shared with the client library (one
format, one parser); here a validation error is a :class:`SecretFormatError` of this package, so
the engine logs and counts it like every other rotation error.
"""

from __future__ import annotations

from keyturn_core.secret import (
    DEFAULT_PORTS,
    ENGINE_FAMILIES,
    MAX_SECRET_CHARS,
    EngineFamily,
    TlsMode,
)
from keyturn_core.secret import DatabaseSecret as _Secret

from .errors import SecretFormatError


class DatabaseSecret(_Secret):
    """A validated rotation secret (see :class:`keyturn_core.DatabaseSecret`).

    >>> s = DatabaseSecret.parse(
    ...     '{"engine": "postgres", "host": "db", "username": "app", "password": "pw"}')
    >>> (s.family, s.port, s.dbname, "pw" in repr(s))
    (<EngineFamily.POSTGRESQL: 'postgresql'>, 5432, 'postgres', False)
    """

    __slots__ = ()
    format_error = SecretFormatError


__all__ = [
    "DEFAULT_PORTS",
    "ENGINE_FAMILIES",
    "MAX_SECRET_CHARS",
    "DatabaseSecret",
    "EngineFamily",
    "TlsMode",
]
