"""Database users and secrets for tests that need a ready-to-rotate secret."""

from __future__ import annotations

import json
import secrets
from typing import Any

from keyturn_local.servers import MariaDBServer, PostgresServer
from keyturn_local.users import create_admin_user, create_app_user

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
        create_admin_user(server, admin, admin_password, drop=[base + "_clone", base])
        superuser = {**data, "username": admin, "password": admin_password}
        data["masterarn"] = client.create_secret(
            Name=f"pkg/{admin}", SecretString=json.dumps(superuser)
        )["ARN"]
    create_app_user(server, engine, base, password)
    arn = client.create_secret(Name=f"pkg/{base}", SecretString=json.dumps(data))["ARN"]
    return arn, data
