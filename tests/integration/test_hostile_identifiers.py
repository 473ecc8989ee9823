"""Hostile user names (quotes, backticks, semicolons, spaces, unicode, injection attempts) from
tests/data/hostile_inputs.json rotate correctly on the real servers, with both strategies: the
driver's quoting carries them. The proof is that the account with exactly that name rotated (a
spliced name would be a syntax error or another account); a canary table the injection attempts
name must also survive.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres, create_admin_user
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE
from tests.support.leaks import LeakWatch

from .conftest import ALL_SERVERS, DbWorld, engine_for, family_of, make_world

pytestmark = pytest.mark.integration
CORPUS = json.loads((Path(__file__).parents[1] / "data" / "hostile_inputs.json").read_text())
NAMES = CORPUS["identifiers"]


def plant_canary(server: PostgresServer | MariaDBServer) -> None:
    if isinstance(server, PostgresServer):
        with admin_postgres(server) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS canary (id int)")
        return
    with admin_mariadb(server) as my_conn, my_conn.cursor() as cur:
        cur.execute("CREATE DATABASE IF NOT EXISTS keyturn_canary")
        cur.execute("CREATE TABLE IF NOT EXISTS keyturn_canary.canary (id int)")


def canary_present(server: PostgresServer | MariaDBServer) -> bool:
    if isinstance(server, PostgresServer):
        with admin_postgres(server) as conn:
            return conn.execute("SELECT to_regclass('public.canary')").fetchone() != (None,)
    with admin_mariadb(server) as my_conn, my_conn.cursor() as cur:
        cur.execute("SHOW TABLES FROM keyturn_canary LIKE 'canary'")
        return cur.fetchone() is not None


@pytest.mark.parametrize("strategy", [SINGLE_USER, ALTERNATING_USERS])
@pytest.mark.parametrize("server_name", ALL_SERVERS)
def test_hostile_usernames_rotate_safely(
    server_name: str,
    strategy: str,
    request: pytest.FixtureRequest,
    leak_watch: LeakWatch,
) -> None:
    engine_name = engine_for(server_name)
    server: PostgresServer | MariaDBServer = request.getfixturevalue(f"{server_name}_server")
    plant_canary(server)
    assert canary_present(server)
    rotated = 0
    with mock_aws(config=MOTO_CONFIG):
        for name in NAMES:
            world: DbWorld = make_world(
                engine_name, server, leak_watch, username=name, secret_name=f"hostile/{rotated}"
            )
            if strategy == ALTERNATING_USERS:
                use_superuser(world, server, leak_watch)
            first = world.secret("AWSCURRENT")
            expected = [name + "_clone", name] if strategy == ALTERNATING_USERS else [name]
            for username in expected:
                world.rotate()
                current = world.secret("AWSCURRENT")
                assert current.username == username
                assert world.logs_in(current), name
            if strategy == SINGLE_USER:
                assert not world.logs_in(first), name
            assert canary_present(server), f"{name!r} dropped the canary"
            rotated += 1
    assert rotated == len(NAMES)


def use_superuser(world: DbWorld, server: PostgresServer | MariaDBServer, leaks: LeakWatch) -> None:
    """Give the world's secret a superuser secret (masterarn), as alternating users need."""
    admin, password = f"hostile_admin_{secrets.token_hex(3)}", secrets.token_urlsafe(20)
    leaks.add(password)
    base = world.initial["username"]
    create_admin_user(server, admin, password, drop=[base + "_clone"], administers=[base])
    superuser = {**world.initial, "username": admin, "password": password}
    master = world.client.create_secret(
        Name=f"hostile-admin/{admin}", SecretString=json.dumps(superuser)
    )["ARN"]
    data: dict[str, Any] = {**world.initial, "masterarn": master}
    world.client.put_secret_value(SecretId=world.arn, SecretString=json.dumps(data))
    world.engine = world_engine(world, ALTERNATING_USERS)


def world_engine(world: DbWorld, strategy: str) -> Any:
    return build_engine(
        family_of(world.engine_name),
        strategy,
        client=world.client.sm,
        env={ENV_TLS_CA_BUNDLE: str(world.ca_bundle)},
    )
