"""Database users and secrets for tests that need a ready-to-rotate secret."""

from __future__ import annotations

import json
import secrets
import ssl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pymysql

from keyturn_local.servers import MariaDBServer, PostgresServer
from keyturn_local.users import (
    admin_mariadb,
    admin_postgres,
    create_admin_user,
    create_app_user,
)

from .leaks import LeakWatch


def new_password(leaks: LeakWatch) -> str:
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    return password


def setup_secret(
    server: PostgresServer | MariaDBServer,
    alternating: bool,
    client: Any,
    leaks: LeakWatch,
    *,
    name: str,
) -> tuple[str, dict[str, Any]]:
    """An application user (and a superuser for alternating users) on ``server``, and its secret
    in moto."""
    engine = "postgres" if isinstance(server, PostgresServer) else "mariadb"
    base = f"{name}_{'alt' if alternating else 'one'}"
    password = new_password(leaks)
    data: dict[str, Any] = {
        "engine": engine,
        "host": server.admin.host,
        "port": server.port,
        "username": base,
        "password": password,
    }
    if alternating:
        admin, admin_password = base + "_admin", new_password(leaks)
        create_admin_user(server, admin, admin_password, drop=[base + "_clone", base])
        superuser = {**data, "username": admin, "password": admin_password}
        data["masterarn"] = client.create_secret(
            Name=f"pkg/{admin}", SecretString=json.dumps(superuser)
        )["ARN"]
    create_app_user(
        server, engine, base, password, administered_by=base + "_admin" if alternating else None
    )
    arn = client.create_secret(Name=f"pkg/{base}", SecretString=json.dumps(data))["ARN"]
    return arn, data


ENGINE_VERSIONS = {"postgres": "15.8", "mariadb": "10.11.8", "mysql": "8.0.39"}


def rds_instance(rds: Any, identifier: str, engine: str, port: int, master: str) -> Any:
    """An RDS instance whose master password RDS manages (``DescribeDBInstances``' entry; its
    ``MasterUserSecret`` names the secret RDS created)."""
    return rds.create_db_instance(
        DBInstanceIdentifier=identifier,
        DBInstanceClass="db.t4g.micro",
        Engine=engine,
        EngineVersion=ENGINE_VERSIONS[engine],
        MasterUsername=master,
        ManageMasterUserPassword=True,
        Port=port,
        AllocatedStorage=20,
    )["DBInstance"]


def rds_managed_superuser(
    client: Any,
    master_arn: str,
    server: PostgresServer | MariaDBServer,
    engine: str,
    leaks: LeakWatch,
    *,
    master: str,
    base: str,
    host: str,
) -> dict[str, Any]:
    """As RDS leaves things: the master user's password set on the server and in RDS's secret
    (``username`` and ``password`` only). Then an application user ``base``; returns the value
    of its secret, which names the master secret and the database as ``host``."""
    master_password = new_password(leaks)
    client.put_secret_value(
        SecretId=master_arn,
        SecretString=json.dumps({"username": master, "password": master_password}),
    )
    create_admin_user(server, master, master_password, drop=[base + "_clone", base])
    password = new_password(leaks)
    create_app_user(server, engine, base, password, administered_by=master)
    return {
        "engine": engine,
        "host": host,
        "port": server.port,
        "username": base,
        "password": password,
        "masterarn": master_arn,
    }


@contextmanager
def max_password_errors(server: MariaDBServer, limit: int) -> Iterator[None]:
    """MariaDB blocks an account after ``limit`` wrong passwords in a row (until FLUSH
    PRIVILEGES), as MySQL 8's FAILED_LOGIN_ATTEMPTS locks one; restored after."""
    with admin_mariadb(server) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@GLOBAL.max_password_errors")
        row = cur.fetchone()
        assert row is not None
        cur.execute("SET GLOBAL max_password_errors = %s", (limit,))
    try:
        yield
    finally:
        with admin_mariadb(server) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL max_password_errors = %s", (row[0],))
            cur.execute("FLUSH PRIVILEGES")


def plain_login(server: MariaDBServer, user: str, password: str) -> int:
    """0 when ``user`` logs in to ``server`` with ``password``, else the server's error number
    (4150: blocked after too many wrong passwords)."""
    assert server.tls_files is not None
    try:
        pymysql.connect(
            host=server.admin.host,
            port=server.port,
            user=user,
            password=password,
            ssl=ssl.create_default_context(cafile=str(server.tls_files.ca_cert)),
        ).close()
    except pymysql.err.OperationalError as exc:
        code: int = exc.args[0]
        return code
    return 0


def refused_logins(server: PostgresServer | MariaDBServer, user: str) -> int:
    """How many logins as ``user`` the server has refused for a wrong password, read from its
    own log (what a lockout policy counts). Needs the server's statement log (MariaDB's
    general log records refused connections)."""
    if isinstance(server, PostgresServer):
        text = server.log_path.read_text(errors="replace")
        return text.count(f'password authentication failed for user "{user}"')
    log = server.base / "general.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    return text.count(f"Access denied for user '{user}'@")


@contextmanager
def trusted_login(server: PostgresServer, user: str) -> Iterator[None]:
    """A ``trust`` rule for ``user`` from 127.0.0.1 ahead of every other rule in pg_hba.conf: the
    server then lets the user in whatever password is given, and never asks for one."""
    hba = server.base / "data" / "pg_hba.conf"
    original = hba.read_text()
    quoted = '"' + user.replace('"', '""') + '"'
    hba.write_text(f"host all {quoted} 127.0.0.1/32 trust\n" + original)
    try:
        _reload_until(server, user, trusted=True)
        yield
    finally:
        hba.write_text(original)
        _reload_until(server, user, trusted=False)


def _reload_until(server: PostgresServer, user: str, *, trusted: bool) -> None:
    """Reload the configuration, then wait until a login with a made-up password shows it (the
    postmaster re-reads pg_hba.conf on its own time)."""
    with admin_postgres(server) as conn:
        conn.execute("SELECT pg_reload_conf()")
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(
                host=server.admin.host,
                port=server.port,
                user=user,
                password="made-up-password-0",
                dbname="postgres",
                sslmode="require",
            ).close()
            accepted = True
        except psycopg.OperationalError:
            accepted = False
        if accepted == trusted:
            return
        assert time.monotonic() < deadline, "pg_hba.conf was not reloaded"
        time.sleep(0.05)
