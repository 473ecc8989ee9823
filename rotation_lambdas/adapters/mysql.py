"""MySQL, MariaDB and Aurora MySQL, through PyMySQL.

The statement that changes a password depends on the server (see :func:`own_password_statement`):
MariaDB receives a ``mysql_native_password`` hash, so the password never crosses the wire; MySQL
5.7 and 8.x need the password itself (their ``caching_sha2_password`` hash is salted server-side),
sent as a bound parameter over TLS.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field
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
from .base import DatabaseAdapter, driver_message, redacted_cause

type MyConnection = Connection[Any]

ER_ACCESS_DENIED = 1045
ER_DBACCESS_DENIED = 1044
ER_BAD_DB = 1049
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142
CR_CONN_HOST_ERROR = 2003
CR_SSL_CONNECTION_ERROR = 2026

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True, order=True)
class ServerVersion:
    """A MySQL-family server version, parsed from ``SELECT VERSION()``.

    >>> ServerVersion.parse("10.11.6-MariaDB-0+deb12u1")
    ServerVersion(mariadb=True, major=10, minor=11, patch=6)
    >>> ServerVersion.parse("8.0.36")
    ServerVersion(mariadb=False, major=8, minor=0, patch=36)
    """

    mariadb: bool
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """Parse a version string; raise :class:`ConfigurationError` if it is not one."""
        mariadb = "mariadb" in text.lower()
        # MariaDB's handshake prefixes "5.5.5-" for old replication clients.
        if mariadb and text.startswith("5.5.5-"):
            text = text[len("5.5.5-") :]
        match = _VERSION.match(text.strip())
        if match is None:
            raise ConfigurationError("the server's VERSION() is not a recognisable version")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(mariadb=mariadb, major=major, minor=minor, patch=patch)

    @property
    def triple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text with its bound parameters; ``repr`` hides the parameters (they are secrets)."""

    sql: str
    params: tuple[str, ...] = field(default=(), repr=False)


def native_password_hash(password: str) -> str:
    """The ``mysql_native_password`` hash: ``*`` + upper hex of SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()  # noqa: S324 - the protocol's hash
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def own_password_statement(
    version: ServerVersion, new_password: str, login_password: str
) -> Statement:
    """The statement a logged-in user runs to change its own password on ``version``.

    - MariaDB (any): ``SET PASSWORD = '<native hash>'`` - the only self-service form that needs no
      CREATE USER privilege, and it keeps the password off the wire.
    - MySQL before 5.7.6: ``SET PASSWORD = PASSWORD(?)``.
    - MySQL 5.7.6 to 8.0.12: ``ALTER USER CURRENT_USER() IDENTIFIED BY ?``.
    - MySQL 8.0.13 and later: the same with ``REPLACE ?`` (the current password), so accounts with
      ``PASSWORD REQUIRE CURRENT`` rotate too.
    """
    if version.mariadb:
        return Statement("SET PASSWORD = %s", (native_password_hash(new_password),))
    if version.triple < (5, 7, 6):
        return Statement("SET PASSWORD = PASSWORD(%s)", (new_password,))
    if version.triple < (8, 0, 13):
        return Statement("ALTER USER CURRENT_USER() IDENTIFIED BY %s", (new_password,))
    return Statement(
        "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (new_password, login_password)
    )


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


class MySQLAdapter(DatabaseAdapter[MyConnection]):
    """Database adapter for MySQL, MariaDB and Aurora MySQL."""

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
        """The server's version, from ``SELECT VERSION()``."""
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION()")
            row = cur.fetchone()
        if row is None:
            raise RotationError("SELECT VERSION() returned no row")
        return ServerVersion.parse(str(row[0]))

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
