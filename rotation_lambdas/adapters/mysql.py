"""MySQL, MariaDB and Aurora MySQL, through PyMySQL.

The statement that changes a password depends on the server (see :func:`own_password_statement`):
MariaDB receives a ``mysql_native_password`` hash, so the password never crosses the wire; MySQL
5.7 and 8.x need the password itself (their ``caching_sha2_password`` hash is salted server-side),
sent as a bound parameter over TLS.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from secrets import token_hex
from typing import Any

import pymysql
from pymysql.connections import Connection

from keyturn_core.login import MYSQL_BAD_DATABASE, LoginFailure, pymysql_failure
from keyturn_core.tls import pymysql_tls_params

from ..errors import (
    AccountLockedError,
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    PrivilegeError,
    RotationError,
)
from ..secret import DatabaseSecret, EngineFamily
from . import mysql_accounts, mysql_preflight, mysql_users
from .base import (
    DatabaseAdapter,
    Outcome,
    PairState,
    ServerMarker,
    SessionErrors,
    UserAdministration,
    classify_failure,
    driver_message,
    redacted_cause,
)
from .mysql_grants import parse_show_grants
from .mysql_statements import (
    ServerVersion,
    Statement,
    native_password_hash,
    own_password_statement,
    session_sql_mode,
)

type MyConnection = Connection[Any]

ER_DBACCESS_DENIED = 1044
ER_SPECIFIC_ACCESS_DENIED = 1227
ER_TABLEACCESS_DENIED = 1142


_OUTCOMES = {
    # The server's text for a refused login names the user and host; the number says it all.
    LoginFailure.AUTHENTICATION: Outcome(
        AuthenticationError, "{where}: login refused (error {code})"
    ),
    LoginFailure.LOCKED: Outcome(
        AccountLockedError,
        "{where}: the account is locked or blocked (error {code})",
        "unlock it (ALTER USER ... ACCOUNT UNLOCK; MariaDB: FLUSH PRIVILEGES after too many "
        "failed logins) and rotate again",
    ),
    LoginFailure.DENIED: Outcome(
        PrivilegeError, "{where}: permission denied (error {code}: {detail})"
    ),
    LoginFailure.BUSY: Outcome(
        NetworkError,
        "{where}: the server cannot take the session now (error {code}: {detail})",
        "the server or the account is at its connection limit; Secrets Manager retries the step",
    ),
}
# A configuration failure other than an unknown database: caching_sha2_password without TLS
# needs RSA, which PyMySQL takes from 'cryptography'.
_NO_CRYPTOGRAPHY = Outcome(
    ConfigurationError,
    "{where}: {detail}",
    "caching_sha2_password without TLS needs the 'cryptography' package (keyturn[mysql] "
    "installs it)",
)


def classify_error(
    exc: BaseException, secret: DatabaseSecret, redact: Iterable[str] = ()
) -> RotationError:
    """Map a PyMySQL error to our hierarchy (pure: unit-tested without a server).

    Error numbers decide, not the server's (translatable) text: see :mod:`keyturn_core.login`.
    """
    where = f"MySQL-family server at {secret.endpoint} as user '{secret.username}'"
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    detail = driver_message(exc, redact)
    failure = pymysql_failure(exc)
    if code in (ER_SPECIFIC_ACCESS_DENIED, ER_TABLEACCESS_DENIED, ER_DBACCESS_DENIED):
        failure = LoginFailure.DENIED
    if failure is LoginFailure.CONFIGURATION and code != MYSQL_BAD_DATABASE:
        return _NO_CRYPTOGRAPHY.raise_as(where, detail, code)
    if failure in (LoginFailure.OTHER, None):
        detail = f"{type(exc).__name__} ({detail})"
    return classify_failure(failure, _OUTCOMES, where, detail, code)


class MySQLAdapter(DatabaseAdapter[MyConnection], UserAdministration[MyConnection]):
    """Database adapter for MySQL, MariaDB and Aurora MySQL (single and alternating users)."""

    family = EngineFamily.MYSQL
    # MySQL's limit; MariaDB allows 80, but a secret should work on every member of the family.
    max_username = 32

    def connect_kwargs(self, secret: DatabaseSecret) -> dict[str, Any]:
        """PyMySQL connection arguments for ``secret`` (includes the password)."""
        timeout = self.settings.connect_timeout
        mode = self.tls_mode(secret)
        target = self.canonical_target(secret, mode)
        kwargs: dict[str, Any] = {
            "host": secret.host if target is None else target.address,
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
        # An explicit context makes PyMySQL refuse a server without TLS (error 2026) instead of
        # its default "preferred" mode, which would continue in plaintext.
        tls = pymysql_tls_params(
            mode, self.settings.ca_bundle, server_name=None if target is None else target.name
        )
        return {**kwargs, **tls}

    def open(self, secret: DatabaseSecret) -> MyConnection:
        kwargs = self.connect_kwargs(secret)
        try:
            conn = pymysql.connect(**kwargs)
        except pymysql.MySQLError as exc:
            raise classify_error(exc, secret) from exc
        try:
            # Our own sql_mode and quoting, whatever the server's: SHOW GRANTS depends on them.
            mode = session_sql_mode(self.server_version(conn))
            with conn.cursor() as cur:
                cur.execute("SET SESSION sql_mode = %s, sql_quote_show_create = 1", (mode,))
        except pymysql.MySQLError as exc:
            self.close(conn)
            raise classify_error(exc, secret) from exc
        return conn

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

    def lockout_after(self, conn: MyConnection) -> int | None:
        limits: list[int] = []
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW CREATE USER CURRENT_USER()")
                options = mysql_accounts.parse_create_user(str(r[0]) for r in cur.fetchall())
                attempts = dict(options.password_options).get("FAILED_LOGIN_ATTEMPTS", "0")
                if attempts.isdigit() and int(attempts) > 0:
                    limits.append(int(attempts))  # MySQL 8's per-account lock
                cur.execute("SHOW GLOBAL VARIABLES LIKE 'max_password_errors'")
                row = cur.fetchone()
        except pymysql.MySQLError:
            return None
        # MariaDB blocks an account after this many wrong passwords until FLUSH PRIVILEGES;
        # its default, 2^32 - 1, means never.
        if row is not None and str(row[1]).isdigit() and int(row[1]) < 2**32 - 1:
            limits.append(int(row[1]))
        return min(limits, default=None)

    def administration_problems(self, conn: MyConnection, base: str) -> list[str]:
        version = self.server_version(conn)
        try:
            with conn.cursor() as cur:
                cur.execute("SHOW GRANTS FOR CURRENT_USER()")
                own = parse_show_grants(
                    (str(row[0]) for row in cur.fetchall()),
                    dynamic_privileges=version.has_dynamic_privileges,
                )
            accounts = mysql_users.read_user(conn, version, base)
            if not accounts:
                return [f"the user '{base}' does not exist"]
            gaps: list[str] = []
            for account in accounts.values():
                gaps += mysql_preflight.administration_gaps(own, account.grants, base)
        except pymysql.MySQLError as exc:
            return [f"reading the users' accounts failed ({driver_message(exc)})"]
        except RotationError as exc:
            return [exc.message]
        return list(dict.fromkeys(gaps))

    # --- alternating users, over a superuser connection (see mysql_users) ----------------------

    def login_proof_problem(
        self, conn: MyConnection, login: DatabaseSecret, *, superuser_checks: bool = False
    ) -> str | None:
        with _on_session("read the session's account"), conn.cursor() as cur:
            cur.execute("SELECT CURRENT_USER()")
            row = cur.fetchone()
            # 'user@host' of the account the server matched (a user name may itself hold '@'):
            # an anonymous account ('@host') or a proxied one is not the login's own.
            if row is None or str(row[0]).rsplit("@", 1)[0] != login.username:
                return (
                    f"the login as '{login.username}' at {login.endpoint} matched another account "
                    "(anonymous or proxied)"
                )
            if superuser_checks:
                return None
            cur.execute("SHOW CREATE USER CURRENT_USER()")
            options = mysql_accounts.parse_create_user(str(r[0]) for r in cur.fetchall())
        if not options.password_checked:
            return (
                f"the account '{row[0]}' has no password or authenticates with a plugin that "
                "checks none: a login as it proves nothing about who holds the password"
            )
        return None

    def other_accounts(self, conn: MyConnection, login: DatabaseSecret) -> list[str] | None:
        """The hosts of ``login``'s user other than the one its session matched, or None when
        the session may not read the account list (mysql.user)."""
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT CURRENT_USER()")
                row = cur.fetchone()
                matched = str(row[0]).rsplit("@", 1)[1] if row else ""
                cur.execute("SELECT Host FROM mysql.user WHERE User = %s", (login.username,))
                hosts = {str(r[0]) for r in cur.fetchall()}
        except pymysql.MySQLError as exc:
            if exc.args and exc.args[0] in _PRIVILEGE_CODES:
                return None
            raise classify_error(exc, login) from exc
        return sorted(hosts - {matched, ""})

    def claim_marker(self, conn: MyConnection) -> ServerMarker:
        name = "keyturn-" + token_hex(16)  # a user lock, released when the session ends
        with _on_session("take a user lock"), conn.cursor() as cur:
            cur.execute("SELECT GET_LOCK(%s, 0)", (name,))
            row = cur.fetchone()
        if row is None or row[0] != 1:
            raise RotationError("could not take a user lock to compare servers; re-run")
        return ServerMarker(name)

    def lock_holder(self, conn: MyConnection, marker: ServerMarker) -> str | None:
        with _as_superuser("look up a user lock", ()), conn.cursor() as cur:
            cur.execute("SELECT COUNT(*) FROM mysql.user WHERE User = ''")
            anonymous = cur.fetchone()
            if anonymous is not None and int(anonymous[0]) > 0:
                # A login by any name with the wrong password could match an anonymous account
                # and still be listed under that name: no proof of control is possible.
                raise ConfigurationError(
                    "the server has anonymous accounts (user ''): a login cannot prove control "
                    "of an account there, so the superuser changes nothing",
                    hint="drop the anonymous accounts (mysql_secure_installation does)",
                )
            cur.execute("SELECT IS_USED_LOCK(%s)", (marker.name,))
            row = cur.fetchone()
            if row is None or row[0] is None:
                return None
            cur.execute(
                "SELECT USER, COMMAND FROM information_schema.PROCESSLIST WHERE ID = %s", (row[0],)
            )
            holder = cur.fetchone()
        if holder is None:
            raise PrivilegeError(
                "the superuser cannot see which account holds the session lock",
                hint="grant the superuser the PROCESS privilege (RDS's master user has it)",
            )
        user, command = str(holder[0]), str(holder[1])
        if command != "Sleep":
            # While a routine, trigger or event runs, the process list shows its definer, not
            # who logged in: only an idle session (ours is, while we look) names its login.
            return f"{user} (busy running a statement)"
        return user

    def unchecked_login(self, conn: MyConnection, username: str) -> str | None:
        with _as_superuser("read the user's accounts", ()):
            return mysql_users.unchecked_login(conn, username)

    def pair_state(self, conn: MyConnection, base: str, clone: str) -> PairState:
        # MariaDB keeps no note on an account: a clone is proven by the password it takes.
        with _as_superuser("look up users", ()):
            return PairState(clone_exists=bool(mysql_users.hosts_of(conn, clone)))

    def password_matches(self, conn: MyConnection, username: str, password: str) -> bool | None:
        secrets = [password, native_password_hash(password)]
        with _as_superuser(f"read the accounts of '{username}'", secrets):
            return mysql_users.takes_password(conn, username, password)

    def refusals(
        self, conn: MyConnection, base: str, clone: str, clone_is_ours: Callable[[], bool]
    ) -> list[str]:
        version = self.server_version(conn)
        with _as_superuser("inspect the users", ()):
            return mysql_users.refusals(conn, version, base, clone, clone_is_ours)

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
        version = self.server_version(conn)
        with _as_superuser("compare users", ()):
            return mysql_users.parity_differences(
                clone,
                mysql_users.read_user(conn, version, base),
                mysql_users.read_user(conn, version, clone),
            )


# 1045/1698 access denied (MariaDB answers 1698 to a role grant without ADMIN OPTION),
# 1044/1142/1227 missing privilege, 1370 no routine privilege.
_PRIVILEGE_CODES = (1044, 1045, 1142, 1227, 1370, 1698)


_ERRORS = SessionErrors(
    driver_error=pymysql.MySQLError,
    is_privilege=lambda exc, _: bool(exc.args) and exc.args[0] in _PRIVILEGE_CODES,
    session_hint="the rotated user must be able to run SELECT and take a user lock (GET_LOCK)",
    superuser_hint="the superuser needs CREATE USER, SELECT on mysql.*, every privilege it "
    "grants WITH GRANT OPTION, and the base user's roles WITH ADMIN OPTION",
)
_on_session, _as_superuser = _ERRORS.on_session, _ERRORS.as_superuser


__all__ = [
    "MySQLAdapter",
    "ServerVersion",
    "Statement",
    "classify_error",
    "native_password_hash",
    "own_password_statement",
]
