"""Database users and secrets for tests that need a ready-to-rotate secret."""

from __future__ import annotations

import json
import secrets
from typing import Any

from psycopg import sql

from keyturn_local.servers import MariaDBServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres, create_app_user

from .leaks import LeakWatch


def new_password(leaks: LeakWatch) -> str:
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    return password


def setup_secret(
    engine: str,
    alternating: bool,
    pg: PostgresServer,
    my: MariaDBServer,
    client: Any,
    leaks: LeakWatch,
    *,
    name: str,
) -> tuple[str, dict[str, Any]]:
    """An application user (and a superuser for alternating users) and its secret in moto."""
    postgres = engine == "postgres"
    server: PostgresServer | MariaDBServer = pg if postgres else my
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
        if postgres:
            with admin_postgres(pg) as conn:
                for role in (base + "_clone", base, admin):
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN CREATEROLE PASSWORD {}").format(
                        sql.Identifier(admin), sql.Literal(admin_password)
                    )
                )
        else:
            with admin_mariadb(my) as my_conn, my_conn.cursor() as cur:
                for user in (base + "_clone", admin):
                    cur.execute("DROP USER IF EXISTS %s@'%%'", (user,))
                cur.execute("CREATE USER %s@'%%' IDENTIFIED BY %s", (admin, admin_password))
                cur.execute("GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION", (admin,))
        superuser = {**data, "username": admin, "password": admin_password}
        data["masterarn"] = client.create_secret(
            Name=f"pkg/{admin}", SecretString=json.dumps(superuser)
        )["ARN"]
    create_app_user(server, engine, base, password)
    arn = client.create_secret(Name=f"pkg/{base}", SecretString=json.dumps(data))["ARN"]
    return arn, data
