"""Administration on the local servers: application users for the demo and the tests."""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import pymysql
from psycopg import sql

from .servers import MariaDBServer, PostgresServer


def _verify_mode(server: PostgresServer | MariaDBServer) -> str:
    """verify-full, unless the server's certificate deliberately names another host."""
    return "verify-full" if server.admin.host in server.tls_hosts else "verify-ca"


@contextmanager
def admin_postgres(server: PostgresServer) -> Iterator[psycopg.Connection[Any]]:
    """A superuser connection to ``server`` (TLS verified when the server has TLS)."""
    tls: dict[str, Any] = {"sslmode": "disable"}
    if server.tls_files is not None:
        tls = {"sslmode": _verify_mode(server), "sslrootcert": str(server.tls_files.ca_cert)}
    conn = psycopg.connect(
        host=server.admin.host,
        port=server.port,
        user=server.admin.user,
        password=server.admin.password,
        dbname="postgres",
        autocommit=True,
        **tls,
    )
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def admin_mariadb(server: MariaDBServer) -> Iterator[pymysql.connections.Connection[Any]]:
    """A root connection to ``server`` (TLS verified when the server has TLS)."""
    kwargs: dict[str, Any] = {"ssl_disabled": True}
    if server.tls_files is not None:
        ctx = ssl.create_default_context(cafile=str(server.tls_files.ca_cert))
        ctx.check_hostname = _verify_mode(server) == "verify-full"
        kwargs = {"ssl": ctx}
    conn = pymysql.connect(
        host=server.admin.host,
        port=server.port,
        user=server.admin.user,
        password=server.admin.password,
        autocommit=True,
        **kwargs,
    )
    try:
        yield conn
    finally:
        conn.close()


def create_app_user(
    server: PostgresServer | MariaDBServer,
    engine: str,
    username: str,
    password: str,
    *,
    administered_by: str | None = None,
) -> None:
    """Create (or reset) a login user with ``password`` on ``server``; ``administered_by``: the
    alternating-users superuser that will rotate it (see :func:`let_administer`)."""
    _create_login(server, username, password, drop=(), administrator=False)
    if administered_by is not None:
        let_administer(server, administered_by, [username])


def create_admin_user(
    server: PostgresServer | MariaDBServer,
    username: str,
    password: str,
    *,
    drop: Sequence[str] = (),
    administers: Sequence[str] = (),
) -> None:
    """Create (or reset) a user able to administer others: the alternating-users superuser.

    PostgreSQL: a CREATEROLE role; MariaDB: ALL PRIVILEGES WITH GRANT OPTION. Neither is a true
    superuser, which is what the README recommends. ``drop`` names users to remove first;
    ``administers``, existing users it will rotate (see :func:`let_administer`).
    """
    _create_login(server, username, password, drop=drop, administrator=True)
    let_administer(server, username, administers)


def let_administer(
    server: PostgresServer | MariaDBServer, admin: str, users: Sequence[str]
) -> None:
    """From PostgreSQL 16 a CREATEROLE role may change only roles it holds ADMIN OPTION on (it
    has it on those it created): grant it on ``users``, without their privileges (INHERIT FALSE,
    SET FALSE), as the README tells operators to. Nothing to do before 16, nor on MariaDB."""
    if not users or not isinstance(server, PostgresServer):
        return
    with admin_postgres(server) as conn:
        row = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        if row is None or row[0] < 160000:
            return
        for user in users:
            conn.execute(
                sql.SQL("GRANT {} TO {} WITH ADMIN OPTION, INHERIT FALSE, SET FALSE").format(
                    sql.Identifier(user), sql.Identifier(admin)
                )
            )


def _create_login(
    server: PostgresServer | MariaDBServer,
    username: str,
    password: str,
    *,
    drop: Sequence[str],
    administrator: bool,
) -> None:
    if isinstance(server, PostgresServer):
        create = (
            sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}")
            if administrator
            else sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}")
        )
        with admin_postgres(server) as conn:
            for role in (*drop, username):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            conn.execute(create.format(sql.Identifier(username), sql.Literal(password)))
        return
    with admin_mariadb(server) as my_conn, my_conn.cursor() as cur:
        for user in (*drop, username):
            cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
        cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (username, password))
        if administrator:
            cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (username,))
