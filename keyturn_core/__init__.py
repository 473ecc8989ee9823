"""What the rotation functions and the client library share, with the standard library only.

- :mod:`.secret`: the secret's JSON format and its one parser (:class:`DatabaseSecret`).
- :mod:`.tls`: how a TLS mode becomes psycopg and PyMySQL settings.
- :mod:`.login`: why a login failed, in any server language (:func:`psycopg_failure`,
  :func:`pymysql_failure`); the drivers are imported only when their errors are classified.
"""

from __future__ import annotations

from .errors import SecretFormatError
from .login import LoginFailure, psycopg_failure, pymysql_failure
from .secret import (
    DEFAULT_PORTS,
    ENGINE_FAMILIES,
    MAX_SECRET_CHARS,
    DatabaseSecret,
    EngineFamily,
    TlsMode,
)
from .tls import libpq_tls_params, pymysql_tls_params, ssl_context

__all__ = [
    "DEFAULT_PORTS",
    "ENGINE_FAMILIES",
    "MAX_SECRET_CHARS",
    "DatabaseSecret",
    "EngineFamily",
    "LoginFailure",
    "SecretFormatError",
    "TlsMode",
    "libpq_tls_params",
    "psycopg_failure",
    "pymysql_failure",
    "pymysql_tls_params",
    "ssl_context",
]
