"""PostgreSQL and Aurora PostgreSQL, through psycopg 3.

The new password never reaches the server in plaintext: libpq computes a SCRAM-SHA-256 verifier on
the client (``PQencryptPasswordConn``) and ``ALTER ROLE`` receives the verifier.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable
from secrets import randbits, token_urlsafe
from typing import Any

import psycopg
from psycopg import sql

from keyturn_core.login import LoginFailure, psycopg_failure
from keyturn_core.tls import libpq_tls_params

from ..errors import (
    AccountLockedError,
    NetworkError,
    RotationError,
)
from ..secret import DatabaseSecret, EngineFamily
from . import postgres_roles as roles
from .base import (
    DatabaseAdapter,
    Outcome,
    PairChange,
    PairState,
    ServerMarker,
    SessionErrors,
    UserAdministration,
    classify_failure,
    driver_message,
    redacted_cause,
)

type PgConnection = psycopg.Connection[Any]

_PRIVILEGE_SQLSTATES = ("42501",)
_MIN_LIBPQ_TIMEOUT = 2  # libpq treats connect_timeout below 2 seconds as 2
# Our sessions' own settings, whatever the roles' (ALTER ROLE ... SET): a read-only default would
# refuse ALTER ROLE, a tiny timeout would cut a step short. Settings given at connect time take
# precedence over the roles' own. (The rotated user's session runs only schema-qualified calls,
# so its own search_path cannot redirect them.)
SESSION_OPTIONS = (
    "-c default_transaction_read_only=off -c statement_timeout=20s -c lock_timeout=10s "
    "-c idle_in_transaction_session_timeout=0"
)


def alter_password_statement(username: str, verifier: str) -> sql.Composed:
    """``ALTER ROLE "user" WITH PASSWORD 'verifier'`` with the identifier quoted by psycopg.

    Utility statements take no bind parameters, so the verifier is a quoted literal; it is a hash,
    not the password.
    """
    return sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
        sql.Identifier(username), sql.Literal(verifier)
    )


_OUTCOMES = {
    LoginFailure.LOCKED: Outcome(
        AccountLockedError,
        "{where}: the role may not log in ({detail})",
        "give the role LOGIN (ALTER ROLE ... LOGIN) and rotate again",
    ),
    LoginFailure.BUSY: Outcome(
        NetworkError,
        "{where}: the server cannot take the session now ({detail})",
        "the server, database or role is at its connection limit, or the server is starting "
        "or stopping; Secrets Manager retries the step",
    ),
}


def classify_error(
    exc: psycopg.Error, secret: DatabaseSecret, redact: Iterable[str] = ()
) -> RotationError:
    """Map a psycopg error to our hierarchy (pure: unit-tested without a server).

    Whether a login was refused is read without trusting the server's language (see
    :mod:`keyturn_core.login`); after login, the SQLSTATE decides.
    """
    where = f"PostgreSQL at {secret.endpoint} as user '{secret.username}'"
    detail = driver_message(exc, redact)
    failure = psycopg_failure(exc)
    if failure is LoginFailure.OTHER and exc.sqlstate in _PRIVILEGE_SQLSTATES:
        failure = LoginFailure.DENIED
    if failure is LoginFailure.OTHER:
        detail = f"{type(exc).__name__} ({detail})"
    return classify_failure(failure, _OUTCOMES, where, detail)


class PostgresAdapter(DatabaseAdapter[PgConnection], UserAdministration[PgConnection]):
    """Database adapter for the PostgreSQL family (single user and alternating users)."""

    family = EngineFamily.POSTGRESQL
    max_username = 63  # NAMEDATALEN - 1: PostgreSQL truncates longer names
    username_unit = "bytes"
    binds_clones = True

    def username_size(self, username: str) -> int:
        return len(username.encode())

    def connect_kwargs(self, secret: DatabaseSecret) -> dict[str, Any]:
        """libpq connection parameters for ``secret`` (includes the password)."""
        mode = self.tls_mode(secret)
        target = self.canonical_target(secret, mode)
        # libpq verifies the certificate against host and connects to hostaddr when given.
        where = (
            {"host": secret.host}
            if target is None
            else {
                "host": target.name,
                "hostaddr": target.address,
            }
        )
        return {
            **where,
            "port": secret.port,
            "user": secret.username,
            "password": secret.password,
            "dbname": secret.dbname,
            "gssencmode": "disable",
            "connect_timeout": max(_MIN_LIBPQ_TIMEOUT, math.ceil(self.settings.connect_timeout)),
            "application_name": "keyturn-rotation",
            "options": SESSION_OPTIONS,
            **libpq_tls_params(mode, self.settings.ca_bundle),
        }

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
            # A role setting "role = grp" makes every session act as grp, which may not alter
            # this role: act as the login itself.
            conn.execute("SET ROLE NONE")
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

    def login_proof_problem(
        self, conn: PgConnection, login: DatabaseSecret, *, superuser_checks: bool = False
    ) -> str | None:
        if not conn.pgconn.used_password:
            # libpq records whether the server asked for the password: with a 'trust', 'peer'
            # or 'cert' rule in pg_hba.conf it did not, and any password would have "worked".
            return (
                f"the server at {login.endpoint} let '{login.username}' in without asking for a "
                "password (a 'trust', 'peer' or 'cert' rule in pg_hba.conf): such a login proves "
                "nothing about who holds the password"
            )
        # The role is the one named at connect (PostgreSQL maps no login to another role, and
        # the name is within the limit, so never cut): nothing more to ask the server.
        return None

    def claim_marker(self, conn: PgConnection) -> ServerMarker:
        # A session-level advisory lock (released when the session ends), and the same random
        # value as the session's application_name, which every role may read.
        key = randbits(63)
        with _on_session("take a session lock"):
            row = conn.execute(
                "SELECT pg_catalog.pg_try_advisory_lock(%s), "
                "pg_catalog.set_config('application_name', %s, false)",
                (key, _marker_name(key)),
            ).fetchone()
        if row is None or row[0] is not True:
            raise RotationError("could not take a session lock to compare servers; re-run")
        return ServerMarker(str(key))

    def lock_holder(self, conn: PgConnection, marker: ServerMarker) -> str | None:
        key = int(marker.name)
        with _as_superuser("look up a session lock", ()):
            rows = conn.execute(
                "SELECT a.usename FROM pg_catalog.pg_locks l "
                "JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid "
                "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                "AND l.classid::bigint = %s AND l.objid::bigint = %s "
                "AND a.application_name = %s",
                (key >> 32, key & 0xFFFFFFFF, _marker_name(key)),
            ).fetchall()
        holders = {str(row[0]) for row in rows}
        if len(holders) > 1:
            return ", ".join(sorted(holders))  # never one of them alone
        return holders.pop() if holders else None

    def pair_state(self, conn: PgConnection, base: str, clone: str) -> PairState:
        with _as_superuser("look up the users", ()):
            states = roles.role_states(conn, base, clone)
        found = states.get(clone)
        if found is None:
            return PairState(clone_exists=False)
        return PairState(True, clone_in_base=base in found.member_of, clone_note=found.note)

    def administration_refusals(self, conn: PgConnection, base: str, clone: str) -> list[str]:
        with _as_superuser("read what the superuser may do", ()):
            return roles.administration_refusals(conn, base, clone)

    def apply(self, conn: PgConnection, change: PairChange) -> None:
        # One transaction: either the clone is whole (created, acting as the base, bound to the
        # secret) and the password set, or nothing happened. A transaction-level lock keeps two
        # runs of the step for one pair from interleaving.
        secrets = [change.password, change.clone_password]

        def verifier(user: str, password: str) -> str:
            value = self._verifier(conn, user, password)
            secrets.append(value)
            return value

        with _as_superuser(f"rotate '{change.rotating}'", secrets), conn.transaction():
            conn.execute(
                "SELECT pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext(%s))",
                ("keyturn-pair:" + change.clone,),
            )
            created = roles.mirror_clone(
                conn,
                change.base,
                change.clone,
                lambda: verifier(change.clone, change.clone_password),
                change.binding,
            )
            if created and (change.rotating, change.password) == (
                change.clone,
                change.clone_password,
            ):
                return  # created with the new password
            roles.set_password(conn, change.rotating, verifier(change.rotating, change.password))

    def refusals(
        self, conn: PgConnection, base: str, clone: str, clone_is_ours: Callable[[], bool]
    ) -> list[str]:
        # A PostgreSQL clone acts as the base and so never holds anything of its own: any extra
        # is refused, ours or not.
        with _as_superuser("inspect the clone", ()):
            return roles.clone_excess(conn, base, clone)

    def user_exists(self, conn: PgConnection, username: str) -> bool:
        with _as_superuser("look up users", ()):
            return roles.role_state(conn, username) is not None

    def mirror_clone(self, conn: PgConnection, base: str, clone: str, clone_password: str) -> None:
        secrets = [clone_password]

        def verifier() -> str:
            secrets.append(self._verifier(conn, clone, clone_password))
            return secrets[-1]

        with _as_superuser(f"make '{clone}' act as '{base}'", secrets):
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


def _marker_name(key: int) -> str:
    return f"keyturn-proof-{key:x}"


def _throwaway_password() -> str:
    return token_urlsafe(24)


_ERRORS = SessionErrors(
    driver_error=psycopg.Error,
    is_privilege=lambda exc, detail: (
        getattr(exc, "sqlstate", None) in _PRIVILEGE_SQLSTATES or "permission denied" in detail
    ),
    session_hint="the rotated user must be able to run SELECT and take an advisory lock",
    superuser_hint="the superuser needs CREATEROLE (and ADMIN OPTION on the base role from "
    "PostgreSQL 16)",
)
_on_session, _as_superuser = _ERRORS.on_session, _ERRORS.as_superuser
