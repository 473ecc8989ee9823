"""Real PostgreSQL 15 and MariaDB 10.11 on loopback (TLS from a test CA, statements logged)."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_local.driver import RotationReport, register_stand_in_function, rotate
from keyturn_local.servers import MOTO_CONFIG, POSTGRES_MAJORS, MariaDBServer, PostgresServer
from keyturn_local.users import create_app_user
from rotation_lambdas import DatabaseSecret, EngineFamily
from rotation_lambdas.adapters import DatabaseAdapter
from rotation_lambdas.handlers import build_engine, make_adapter
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.harness import SecretHarness
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

Server = PostgresServer | MariaDBServer
ENGINES = ["postgres", "mariadb"]
# Every server a test may run on, by fixture prefix: Debian's PostgreSQL 15, the versions
# scripts/bootstrap adds (postgres16, ...), and MariaDB.
POSTGRES_SERVERS = ["postgres", *(f"postgres{major}" for major in POSTGRES_MAJORS)]
ALL_SERVERS = [*POSTGRES_SERVERS, "mariadb"]


def engine_for(server_name: str) -> str:
    """The engine a server's secrets name: postgres16 is PostgreSQL too."""
    return "mariadb" if server_name == "mariadb" else "postgres"


_user_numbers = itertools.count(1)


@dataclass
class DbWorld(SecretHarness):
    """One engine's server, an application user, its secret in moto and a rotation engine."""

    engine_name: str
    server: Server
    adapter: DatabaseAdapter[Any]
    initial: dict[str, Any]

    @property
    def ca_bundle(self) -> Path:
        assert self.server.tls_files is not None
        return self.server.tls_files.ca_cert

    def rotate(self, **kwargs: Any) -> RotationReport:
        report = rotate(
            self.client.sm, self.arn, self.engine, lambda_arn=self.function_arn, **kwargs
        )
        self.watch_all_versions()
        return report

    def secret(self, stage: str, version_id: str | None = None) -> DatabaseSecret:
        kwargs: dict[str, Any] = {"SecretId": self.arn, "VersionStage": stage}
        if version_id:
            kwargs["VersionId"] = version_id
        text = self.client.get_secret_value(**kwargs)["SecretString"]
        self.leaks.add_secret_string(text)
        return DatabaseSecret.parse(text, label=stage)

    def logs_in(self, secret: DatabaseSecret) -> bool:
        conn = self.adapter.try_connect(secret)
        if conn is None:
            return False
        self.adapter.close(conn)
        return True


def rotate_alternating(
    db: DbWorld, base: str, rotations: int, after_each: Callable[[], None] | None = None
) -> None:
    """Rotate ``rotations`` times; after each, AWSCURRENT and AWSPREVIOUS both log in, the users
    take turns, and the user rotated two steps ago no longer logs in with its old password."""
    history = [db.secret("AWSCURRENT")]
    for i in range(rotations):
        db.rotate()
        current, previous = db.secret("AWSCURRENT"), db.secret("AWSPREVIOUS")
        history.append(current)
        assert current.username == (base + "_clone" if i % 2 == 0 else base)
        assert previous.username != current.username
        assert db.logs_in(current), f"AWSCURRENT does not log in after rotation {i + 1}"
        assert db.logs_in(previous), f"AWSPREVIOUS does not log in after rotation {i + 1}"
        if len(history) >= 3:
            two_ago = history[-3]
            assert two_ago.username == current.username
            assert two_ago.password != current.password
            assert not db.logs_in(two_ago)
        if after_each is not None:
            after_each()


def family_of(engine_name: str) -> EngineFamily:
    return EngineFamily.POSTGRESQL if engine_name == "postgres" else EngineFamily.MYSQL


def new_app_user(
    engine_name: str, server: Server, leaks: LeakWatch, username: str | None = None
) -> dict[str, Any]:
    """Create a fresh application user; return its rotation-format secret."""
    username = username or f"app_{next(_user_numbers)}"
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    create_app_user(server, engine_name, username, password)
    return {
        "engine": engine_name,
        "host": server.admin.host,
        "port": server.port,
        "username": username,
        "password": password,
    }


def make_world(
    engine_name: str,
    server: Server,
    leaks: LeakWatch,
    *,
    username: str | None = None,
    secret_name: str | None = None,
) -> DbWorld:
    """Create a user and its secret; must run inside ``mock_aws``."""
    assert server.tls_files is not None
    initial = new_app_user(engine_name, server, leaks, username)
    name = secret_name or f"db/{initial['username']}"
    client = StrictSecretsManager(boto3.client("secretsmanager"))
    arn = client.create_secret(Name=name, SecretString=json.dumps(initial))["ARN"]
    function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
    family = family_of(engine_name)
    env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}
    engine = build_engine(family, client=client.sm, env=env)
    adapter = make_adapter(family, ConnectSettings.from_env(env))
    return DbWorld(client, arn, function_arn, engine, leaks, engine_name, server, adapter, initial)


@pytest.fixture(params=ALL_SERVERS)
def db(request: pytest.FixtureRequest, leak_watch: LeakWatch) -> Iterator[DbWorld]:
    server: Server = request.getfixturevalue(f"{request.param}_server")
    with mock_aws(config=MOTO_CONFIG):
        yield make_world(engine_for(request.param), server, leak_watch)
