"""MySQL, MariaDB and Aurora MySQL, through PyMySQL.

The statement that changes a password depends on the server (see :func:`own_password_statement`):
MariaDB receives a ``mysql_native_password`` hash, so the password never crosses the wire; MySQL
5.7 and 8.x need the password itself (their ``caching_sha2_password`` hash is salted server-side),
sent as a bound parameter over TLS.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import Any

import pymysql
from pymysql.connections import Connection

from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    PrivilegeError,
    RotationError,
    TlsError,
)
from ..secret import DatabaseSecret, EngineFamily, TlsMode
from . import mysql_preflight, mysql_users
from .base import (
    DatabaseAdapter,
    UserAdministration,
    driver_message,
    redacted_cause,
    superuser_errors,
)
from .mysql_grants import parse_show_grants
from .mysql_statements import (
    ServerVersion,
    Statement,
    native_password_hash,
    own_password_statement,
)

type MyConnection = Connection[Any]

ER_ACCESS_DENIED = 1045
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142
CR_CONN_HOST_ERROR = 2003
CR_SSL_CONNECTION_ERROR = 2026


def classify_error(
    exc: BaseException, secret: DatabaseSecret, redact: Iterable[str] = ()
) -> RotationError:
    """Map a PyMySQL error to our hierarchy (pure: unit-tested without a server)."""
    where = f"MySQL-family server at {secret.endpoint} as user '{secret.username}'"
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = driver_message(exc, redact)
    low = detail.lower()
    if code == ER_ACCESS_DENIED:
        return AuthenticationError(f"{where}: login refused (error {code})")
    if code in (ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED, ER_DBACCESS_DENIED):
        return PrivilegeError(f"{where}: permission denied (error {code}: {detail})")
    if (
        code == CR_SSL_CONNECTION_ERROR
        or isinstance(exc.__context__, ssl.SSLError)
        or (code == CR_CONN_HOST_ERROR and ("ssl" in low or "certificate" in low))
    ):
        return TlsError(
            f"{where}: TLS failed ({detail})",
            hint="check the CA bundle, the host name in the secret and the server's TLS setup; "
            "no plaintext retry was made",
        )
    if code == ER_BAD_DB:
        return ConfigurationError(f"{where}: the database named by 'dbname' does not exist")
    if isinstance(exc, pymysql.OperationalError):
        return NetworkError(
            f"{where}: could not connect ({detail})",
            hint="check the host, port, security groups and that the server is running",
        )
    return RotationError(f"{where}: {type(exc).__name__} ({detail})")


class MySQLAdapter(DatabaseAdapter[MyConnection], UserAdministration[MyConnection]):
    """Database adapter for MySQL, MariaDB and Aurora MySQL (single and alternating users)."""

    family = EngineFamily.MYSQL

    def ssl_context(self, mode: TlsMode) -> ssl.SSLContext | None:
        """The TLS context for ``mode``; ``None`` only for ``disable``."""
        if mode is TlsMode.DISABLE:
            return None
        ctx = ssl.create_default_context(cafile=self.settings.ca_bundle)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if mode is TlsMode.REQUIRE:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif mode is TlsMode.VERIFY_CA:
            ctx.check_hostname = False
        return ctx

    def connect_kwargs(self, secret: DatabaseSecret) -> dict[str, Any]:
        """PyMySQL connection arguments for ``secret`` (includes the password)."""
        timeout = self.settings.connect_timeout
        kwargs: dict[str, Any] = {
            "host": secret.host,
            "port": secret.port,
            "user": secret.username,
            "password": secret.password,
            "database": secret.dbname,
            "connect_timeout": timeout,
            "read_timeout": max(timeout, 10.0),
            "write_timeout": max(timeout, 10.0),
            "autocommit": True,
            "charset": "utf8mb4",
        }
        ctx = self.ssl_context(self.tls_mode(secret))
        if ctx is None:
            kwargs["ssl_disabled"] = True
        else:
            # An explicit context makes PyMySQL refuse a server without TLS (error 2026) instead
            # of its default "preferred" mode, which would continue in plaintext.
            kwargs["ssl"] = ctx
        return kwargs

    def open(self, secret: DatabaseSecret) -> MyConnection:
        try:
            return pymysql.connect(**self.connect_kwargs(secret))
        except pymysql.MySQLError as exc:
            raise classify_error(exc, secret) from exc

    def close(self, conn: MyConnection) -> None:
        with contextlib.suppress(pymysql.MySQLError):
            conn.close()

    def server_version(self, conn: MyConnection) -> ServerVersion:
        """The server's version, as announced in the connection handshake (no query)."""
        info = conn.get_server_info()  # type: ignore[no-untyped-call]  # types-PyMySQL leaves it untyped
        return ServerVersion.parse(str(info))

    def change_own_password(
        self, conn: MyConnection, login: DatabaseSecret, new_password: str
    ) -> None:
        secrets = [new_password, login.password, native_password_hash(new_password)]
        try:
            statement = own_password_statement(
                self.server_version(conn), new_password, login.password
            )
            with conn.cursor() as cur:
                cur.execute(statement.sql, statement.params)
        except pymysql.MySQLError as exc:
            raise classify_error(exc, login, secrets) from redacted_cause(exc, secrets)

    def probe(self, conn: MyConnection) -> None:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1")
                row = cur.fetchone()
        except pymysql.MySQLError as exc:
            raise NetworkError(f"MySQL probe query failed ({driver_message(exc)})") from exc
        if row != (1,):
            raise RotationError("MySQL probe query returned an unexpected result")

    def own_password_problems(self, conn: MyConnection, login: DatabaseSecret) -> list[str]:
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@read_only, CURRENT_USER()")
                read_only, account = cur.fetchone() or (0, "")
                cur.execute("SHOW GRANTS")
                grants = [str(row[0]) for row in cur.fetchall()]
        except pymysql.MySQLError as exc:
            return [f"reading its own account failed ({driver_message(exc)})"]
        problems = []
        if int(read_only):
            problems.append("the server is read-only (@@read_only = 1): rotate on the writer")
        if str(account).startswith("@"):
            problems.append("the login matched an anonymous account, which cannot be rotated")
        plugin = mysql_preflight.plugin_problem(grants)
        if plugin is not None:
            problems.append(plugin)
        return problems

    def administration_problems(self, conn: MyConnection, base: str) -> list[str]:
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GRANTS FOR CURRENT_USER()")
                own = parse_show_grants(str(row[0]) for row in cur.fetchall())
            hosts = mysql_users.hosts_of(conn, base)
            if not hosts:
                return [f"the user '{base}' does not exist"]
            gaps: list[str] = []
            for host in sorted(hosts):
                mysql_users.require_of(conn, base, host)
                base_grants = mysql_users.grants_of(conn, base, host)
                gaps += mysql_preflight.administration_gaps(own, base_grants, base)
        except pymysql.MySQLError as exc:
            return [f"reading the users' accounts failed ({driver_message(exc)})"]
        return list(dict.fromkeys(gaps))

    # --- alternating users, over a superuser connection (see mysql_users) ----------------------

    def user_exists(self, conn: MyConnection, username: str) -> bool:
        with _as_superuser("look up users", ()):
            return bool(mysql_users.hosts_of(conn, username))

    def mirror_clone(self, conn: MyConnection, base: str, clone: str, clone_password: str) -> None:
        secrets = [clone_password, native_password_hash(clone_password)]
        with _as_superuser(f"make '{clone}' mirror '{base}'", secrets):
            mysql_users.mirror_clone(conn, self.server_version(conn), base, clone, clone_password)

    def set_password(self, conn: MyConnection, username: str, password: str) -> None:
        secrets = [password, native_password_hash(password)]
        with _as_superuser(f"set the password of '{username}'", secrets):
            mysql_users.set_password(conn, self.server_version(conn), username, password)

    def parity_differences(self, conn: MyConnection, base: str, clone: str) -> list[str]:
        with _as_superuser("compare users", ()):
            return mysql_users.parity_differences(conn, base, clone)


# 1045/1698 access denied (MariaDB answers 1698 to a role grant without ADMIN OPTION),
# 1044/1142/1227 missing privilege, 1370 no routine privilege.
_PRIVILEGE_CODES = (1044, 1045, 1142, 1227, 1370, 1698)


def _as_superuser(what: str, secrets: Sequence[str]) -> AbstractContextManager[None]:
    return superuser_errors(
        what,
        secrets,
        driver_error=pymysql.MySQLError,
        is_privilege=lambda exc, _: bool(exc.args) and exc.args[0] in _PRIVILEGE_CODES,
        hint="the superuser needs CREATE USER, SELECT on mysql.*, every privilege it grants "
        "WITH GRANT OPTION, and the base user's roles WITH ADMIN OPTION",
    )


__all__ = [
    "MySQLAdapter",
    "ServerVersion",
    "Statement",
    "classify_error",
    "native_password_hash",
    "own_password_statement",
]
