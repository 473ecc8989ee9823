"""PostgreSQL and Aurora PostgreSQL, through psycopg 3.

The new password never reaches the server in plaintext: libpq computes a SCRAM-SHA-256 verifier on
the client (``PQencryptPasswordConn``) and ``ALTER ROLE`` receives the verifier.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from secrets import token_urlsafe
from typing import Any

import psycopg
from psycopg import sql

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    PrivilegeError,
    RotationError,
    TlsError,
)
from ..secret import DatabaseSecret, EngineFamily, TlsMode
from . import postgres_roles as roles
from .base import (
    DatabaseAdapter,
    UserAdministration,
    driver_message,
    redacted_cause,
    superuser_errors,
)

type PgConnection = psycopg.Connection[Any]

_AUTH_SQLSTATES = ("28P01", "28000")
_PRIVILEGE_SQLSTATES = ("42501",)
_MIN_LIBPQ_TIMEOUT = 2  # libpq treats connect_timeout below 2 seconds as 2


def alter_password_statement(username: str, verifier: str) -> sql.Composed:
    """``ALTER ROLE "user" WITH PASSWORD 'verifier'`` with the identifier quoted by psycopg.

    Utility statements take no bind parameters, so the verifier is a quoted literal; it is a hash,
    not the password.
    """
    return sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(username), sql.Literal(verifier)
    )


def classify_error(
    exc: psycopg.Error, secret: DatabaseSecret, redact: Iterable[str] = ()
) -> RotationError:
    """Map a psycopg error to our hierarchy (pure: unit-tested without a server).

    At connect time psycopg raises ``OperationalError`` with ``sqlstate`` None, so the server's
    message decides; after login the sqlstate does.
    """
    where = f"PostgreSQL at {secret.endpoint} as user '{secret.username}'"
    detail = driver_message(exc, redact)
    low = detail.lower()
    sqlstate = getattr(exc, "sqlstate", None)
    if (
        sqlstate in _AUTH_SQLSTATES
        or "password authentication failed" in low
        or "no pg_hba.conf entry" in low
    ):
        return AuthenticationError(f"{where}: login refused ({detail})")
    if sqlstate in _PRIVILEGE_SQLSTATES or "permission denied" in low:
        return PrivilegeError(f"{where}: permission denied ({detail})")
    if "ssl" in low or "certificate" in low or "tls" in low:
        return TlsError(
            f"{where}: TLS failed ({detail})",
            hint="check the CA bundle, the host name in the secret and the server's TLS setup; "
            "no plaintext retry was made",
        )
    if sqlstate == "3D000" or ("database" in low and "does not exist" in low):
        return ConfigurationError(f"{where}: the database named by 'dbname' does not exist")
    if isinstance(exc, psycopg.OperationalError):
        return NetworkError(
            f"{where}: could not connect ({detail})",
            hint="check the host, port, security groups and that the server is running",
        )
    return RotationError(f"{where}: {type(exc).__name__} ({detail})")


class PostgresAdapter(DatabaseAdapter[PgConnection], UserAdministration[PgConnection]):
    """Database adapter for the PostgreSQL family (single user and alternating users)."""

    family = EngineFamily.POSTGRESQL

    def connect_kwargs(self, secret: DatabaseSecret) -> dict[str, Any]:
        """libpq connection parameters for ``secret`` (includes the password)."""
        mode = self.tls_mode(secret)
        kwargs: dict[str, Any] = {
            "host": secret.host,
            "port": secret.port,
            "user": secret.username,
            "password": secret.password,
            "dbname": secret.dbname,
            "sslmode": mode.value,
            "gssencmode": "disable",
            "connect_timeout": max(_MIN_LIBPQ_TIMEOUT, math.ceil(self.settings.connect_timeout)),
            "application_name": "keyturn-rotation",
        }
        if mode in (TlsMode.VERIFY_CA, TlsMode.VERIFY_FULL):
            # "system" (libpq 16+) uses the platform trust store rather than ~/.postgresql.
            kwargs["sslrootcert"] = self.settings.ca_bundle or "system"
        return kwargs

    def open(self, secret: DatabaseSecret) -> PgConnection:
        try:
            return psycopg.connect(autocommit=True, **self.connect_kwargs(secret))
        except psycopg.Error as exc:
            raise classify_error(exc, secret) from exc

    def close(self, conn: PgConnection) -> None:
        with contextlib.suppress(psycopg.Error):
            conn.close()

    def change_own_password(
        self, conn: PgConnection, login: DatabaseSecret, new_password: str
    ) -> None:
        secrets = [new_password, login.password]
        try:
            verifier = conn.pgconn.encrypt_password(
                new_password.encode(), login.username.encode(), b"scram-sha-256"
            ).decode()
            secrets.append(verifier)
            conn.execute(alter_password_statement(login.username, verifier))
        except psycopg.Error as exc:
            raise classify_error(exc, login, secrets) from redacted_cause(exc, secrets)

    def probe(self, conn: PgConnection) -> None:
        try:
            row = conn.execute("SELECT 1").fetchone()
        except psycopg.Error as exc:
            raise NetworkError(f"PostgreSQL probe query failed ({driver_message(exc)})") from exc
        if row != (1,):
            raise RotationError("PostgreSQL probe query returned an unexpected result")

    def own_password_problems(self, conn: PgConnection, login: DatabaseSecret) -> list[str]:
        if conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,):
            return ["the server is a read-only standby: rotate against the primary (writer)"]
        try:
            # The real statement, with a throwaway password, in a transaction never committed.
            with conn.transaction(force_rollback=True):
                self.change_own_password(conn, login, _throwaway_password())
        except RotationError as exc:
            return [f"changing its own password fails: {exc}"]
        return []

    def administration_problems(self, conn: PgConnection, base: str) -> list[str]:
        if not self.user_exists(conn, base):
            return [f"the user '{base}' does not exist"]
        clone = base + "_clone"
        try:
            # What setSecret does, in a transaction never committed.
            with conn.transaction(force_rollback=True):
                self.mirror_clone(conn, base, clone, _throwaway_password())
                self.set_password(conn, base, _throwaway_password())
        except RotationError as exc:
            return [str(exc)]
        return []

    # --- alternating users, over a superuser connection (see postgres_roles) -------------------

    def _verifier(self, conn: PgConnection, username: str, password: str) -> str:
        return conn.pgconn.encrypt_password(
            password.encode(), username.encode(), b"scram-sha-256"
        ).decode()

    def user_exists(self, conn: PgConnection, username: str) -> bool:
        with _as_superuser("look up users", ()):
            return roles.role_state(conn, username) is not None

    def mirror_clone(self, conn: PgConnection, base: str, clone: str, clone_password: str) -> None:
        secrets = [clone_password]
        with _as_superuser(f"make '{clone}' act as '{base}'", secrets):
            verifier = self._verifier(conn, clone, clone_password)
            secrets.append(verifier)
            roles.mirror_clone(conn, base, clone, verifier)

    def set_password(self, conn: PgConnection, username: str, password: str) -> None:
        secrets = [password]
        with _as_superuser(f"set the password of '{username}'", secrets):
            verifier = self._verifier(conn, username, password)
            secrets.append(verifier)
            roles.set_password(conn, username, verifier)

    def parity_differences(self, conn: PgConnection, base: str, clone: str) -> list[str]:
        with _as_superuser("compare users", ()):
            return roles.parity_differences(conn, base, clone)


def _throwaway_password() -> str:
    return token_urlsafe(24)


def _as_superuser(what: str, secrets: Sequence[str]) -> AbstractContextManager[None]:
    return superuser_errors(
        what,
        secrets,
        driver_error=psycopg.Error,
        is_privilege=lambda exc, detail: (
            getattr(exc, "sqlstate", None) in _PRIVILEGE_SQLSTATES or "permission denied" in detail
        ),
        hint="the superuser needs CREATEROLE (and ADMIN OPTION on the base role from "
        "PostgreSQL 16)",
    )
