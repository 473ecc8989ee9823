"""The README's client library snippets, run in order against real PostgreSQL and MariaDB.

First inside a single-user rotation's window (the databases already have the new passwords while
AWSCURRENT still holds the old ones, and the cache holds AWSCURRENT), where every snippet must
fall back to AWSPENDING; then again after the rotations finished.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from tests.support.leaks import LeakWatch

from .conftest import DbWorld, make_world, new_app_user

pytestmark = pytest.mark.integration
README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README.split("## Client library", 1)[1].split("\n## ", 1)[0]
SNIPPETS = re.findall(r"```python\n(.*?)```", SECTION, flags=re.DOTALL)


def run_snippets(namespace: dict[str, Any], users: dict[str, str]) -> list[str]:
    """Execute every snippet in order in one namespace; return who each one logged in as."""
    logged_in_as = []
    for number, snippet in enumerate(SNIPPETS, 1):
        namespace.pop("row", None)
        code = compile(snippet, f"README.md client snippet {number}", "exec")
        exec(code, namespace)  # noqa: S102 - our own documentation
        if number == 1:
            assert namespace["creds"].username == users["prod/app/pg"]
            continue
        rows = [namespace["row"]]
        if "pooled_row" in namespace:
            rows.append(namespace.pop("pooled_row"))
        for row in rows:
            user = str(row[0]).split("@")[0]  # MySQL says 'user@host'
            assert user in users.values(), f"snippet {number} logged in as {row[0]!r}"
            logged_in_as.append(user)
    return logged_in_as


def test_every_integration_is_shown_and_runs(
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    shown = "\n".join(SNIPPETS)
    for name in (
        "psycopg_connector",
        "pymysql_connector",
        "psycopg_pool",
        "psycopg_async_connector",
        "psycopg_async_pool",
        "sqlalchemy_engine",
        "sqlalchemy_async_engine",
        "AwsCachingSource",
    ):
        assert f"{name}(" in shown, f"the README shows no {name} snippet"
    bundle = tmp_path / "ca-bundle.pem"
    servers: list[PostgresServer | MariaDBServer] = [postgres_server, mariadb_server]
    bundle.write_bytes(b"".join(s.tls_files.ca_cert.read_bytes() for s in servers if s.tls_files))
    with mock_aws(config=MOTO_CONFIG):
        worlds: dict[str, DbWorld] = {
            "prod/app/pg": make_world(
                "postgres", postgres_server, leak_watch, secret_name="prod/app/pg"
            ),
            "prod/app/mysql": make_world(
                "mariadb", mariadb_server, leak_watch, secret_name="prod/app/mysql"
            ),
        }
        users = {name: world.initial["username"] for name, world in worlds.items()}
        # A secret as RDS manages it for a master user: a username and a password, no more.
        rds_user = new_app_user("postgres", postgres_server, leak_watch)
        worlds["prod/app/pg"].client.create_secret(
            Name="rds!db-keyturn-example",
            SecretString=json.dumps(
                {"username": rds_user["username"], "password": rds_user["password"]}
            ),
        )
        users["rds!db-keyturn-example"] = rds_user["username"]
        namespace: dict[str, Any] = {
            "CA_BUNDLE": str(bundle),
            "RDS_HOST": postgres_server.admin.host,
            "RDS_PORT": postgres_server.port,
            "__name__": "readme",
        }

        # The cache holds AWSCURRENT; then both rotations stop after setSecret.
        exec(compile(SNIPPETS[0], "README.md client snippet 1", "exec"), namespace)  # noqa: S102
        namespace["cache"].get("prod/app/mysql")
        tokens = {}
        for name, world in worlds.items():
            tokens[name] = world.start_rotation(str(uuid.uuid4()))
            for step in ("createSecret", "setSecret"):
                world.run(step, tokens[name])
            world.watch_all_versions()
            assert not world.logs_in(world.secret("AWSCURRENT")), "not in the window"
        in_window = run_snippets(namespace, users)
        assert namespace["pg"].stats.fallbacks == {"AWSPENDING": 1}
        assert namespace["pg"].stats.rotations_detected == 0

        first_pg = namespace["pg"]
        for name, world in worlds.items():
            for step in ("testSecret", "finishSecret"):
                world.run(step, tokens[name])
            assert world.logs_in(world.secret("AWSCURRENT"))
        after = run_snippets(namespace, users)
        # The first connector notices AWSCURRENT's new version once its entry refreshes.
        first_pg.cache.invalidate()
        first_pg.connect().close()
        assert first_pg.stats.rotations_detected == 1

    pg_user, my_user = users["prod/app/pg"], users["prod/app/mysql"]
    rds_user_name = users["rds!db-keyturn-example"]
    # psycopg, PyMySQL, psycopg_pool, asyncio (connection, pool), SQLAlchemy, asyncio
    # SQLAlchemy, an RDS-managed secret, the aws-secretsmanager-caching source
    expected = [pg_user, my_user, pg_user, pg_user, pg_user, my_user, pg_user, rds_user_name]
    expected += [my_user]
    assert in_window == after == expected
    out = capfd.readouterr().out
    assert "Credentials(engine='postgres'" in out
    assert out.count("credentials rotated") == 1  # the README's hook
