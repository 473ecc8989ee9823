"""Alternating users against real PostgreSQL 15 (and MariaDB 10.11 where supported)."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws
from psycopg import sql

from keyturn_local.driver import RotationFailed, register_stand_in_function
from keyturn_local.servers import MOTO_CONFIG, PostgresServer
from keyturn_local.users import admin_postgres, create_app_user, let_administer
from rotation_lambdas import ConfigurationError, DatabaseSecret, ParityError, PrivilegeError
from rotation_lambdas.handlers import ALTERNATING_USERS, build_engine, make_adapter
from rotation_lambdas.settings import ENV_SUPERUSER_SECRET_ARN, ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

from .conftest import POSTGRES_SERVERS, DbWorld, family_of, rotate_alternating

pytestmark = pytest.mark.integration
TOKEN = "22222222-3333-4444-5555-666666666666"


@dataclass
class Pair:
    world: DbWorld
    superuser: dict[str, Any]
    superuser_arn: str

    def login(self, secret: DatabaseSecret) -> Any:
        return self.world.adapter.connect(secret)


def make_superuser(
    server: PostgresServer, leaks: LeakWatch, name: str, createrole: bool = True
) -> dict[str, Any]:
    """A role like RDS's master user: CREATEROLE, not SUPERUSER."""
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    with admin_postgres(server) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN {} PASSWORD {}").format(
                sql.Identifier(name),
                sql.SQL("CREATEROLE" if createrole else "NOCREATEROLE"),
                sql.Literal(password),
            )
        )
    return {
        "engine": "postgres",
        "host": server.admin.host,
        "port": server.port,
        "username": name,
        "password": password,
    }


def make_pair(
    server: PostgresServer,
    leaks: LeakWatch,
    *,
    base: str,
    superuser: dict[str, Any] | None = None,
    secret_extra: dict[str, Any] | None = None,
) -> Pair:
    """Inside mock_aws: a base user owning a schema, a superuser secret, the rotated secret."""
    assert server.tls_files is not None
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    create_app_user(server, "postgres", base, password)
    with admin_postgres(server) as conn:
        conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(base + "_clone")))
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(base)))
        conn.execute(
            sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                sql.Identifier(base), sql.Identifier(base)
            )
        )
        conn.execute(
            sql.SQL("ALTER ROLE {} SET search_path = {}, public").format(
                sql.Identifier(base), sql.Identifier(base)
            )
        )
        conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 20").format(sql.Identifier(base)))
    superuser = superuser or make_superuser(server, leaks, f"{base}_admin")
    let_administer(server, superuser["username"], [base])
    client = StrictSecretsManager(boto3.client("secretsmanager"))
    su_arn = client.create_secret(Name=f"su/{base}", SecretString=json.dumps(superuser))["ARN"]
    initial = {
        "engine": "postgres",
        "host": server.admin.host,
        "port": server.port,
        "username": base,
        "password": password,
        "dbname": "postgres",
        "masterarn": su_arn,
        **(secret_extra or {}),
    }
    arn = client.create_secret(Name=f"alt/{base}", SecretString=json.dumps(initial))["ARN"]
    env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}
    engine = build_engine(family_of("postgres"), ALTERNATING_USERS, client=client.sm, env=env)
    adapter = make_adapter(family_of("postgres"), ConnectSettings.from_env(env))
    function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
    world = DbWorld(client, arn, function_arn, engine, leaks, "postgres", server, adapter, initial)
    return Pair(world, superuser, su_arn)


_pairs = itertools.count(1)


def revoke_membership(conn: Any, pair: Pair, role: str, member: str) -> None:
    """Take ``member`` out of ``role`` as an administrator would. From PostgreSQL 16 a REVOKE
    takes back only the grants its grantor made: name the function's superuser, who made it."""
    statement = sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), sql.Identifier(member))
    if conn.info.server_version >= 160000:
        grantor = sql.Identifier(pair.superuser["username"])
        statement = sql.SQL("{} GRANTED BY {}").format(statement, grantor)
    conn.execute(statement)


@pytest.fixture(params=POSTGRES_SERVERS)
def pair(request: pytest.FixtureRequest, leak_watch: LeakWatch) -> Iterator[Pair]:
    """A pair on each PostgreSQL version: Debian's 15 and those scripts/bootstrap adds."""
    server: PostgresServer = request.getfixturevalue(f"{request.param}_server")
    with mock_aws(config=MOTO_CONFIG):
        yield make_pair(server, leak_watch, base=f"alt_{next(_pairs)}")


@pytest.fixture
def pair_server(pair: Pair) -> PostgresServer:
    assert isinstance(pair.world.server, PostgresServer)
    return pair.world.server


def test_ten_rotations_alternate_and_both_users_keep_working(pair: Pair) -> None:
    rotate_alternating(pair.world, pair.world.initial["username"], 10)


def test_objects_created_by_either_user_are_usable_by_both(pair: Pair) -> None:
    db = pair.world
    db.rotate()
    base_secret, clone_secret = db.secret("AWSPREVIOUS"), db.secret("AWSCURRENT")
    assert clone_secret.username.endswith("_clone")
    with db.adapter.connect(clone_secret) as conn:
        assert conn.execute("SELECT current_user, session_user").fetchone() == (
            base_secret.username,
            clone_secret.username,
        )
        conn.execute("CREATE TABLE made_by_clone (id int)")
        conn.execute("INSERT INTO made_by_clone VALUES (1)")
    with db.adapter.connect(base_secret) as conn:
        conn.execute("INSERT INTO made_by_clone VALUES (2)")
        assert conn.execute("SELECT count(*) FROM made_by_clone").fetchone() == (2,)
        conn.execute("CREATE TABLE made_by_base (id int)")
        conn.execute("INSERT INTO made_by_base VALUES (1)")
    with db.adapter.connect(clone_secret) as conn:
        conn.execute("UPDATE made_by_base SET id = 3")
        assert conn.execute("SELECT id FROM made_by_base").fetchone() == (3,)
        # The base user's search_path applies to the clone too: the tables resolve unqualified.
        assert conn.execute("SHOW search_path").fetchone() is not None


def test_a_grant_added_to_the_base_later_reaches_both_users(
    pair: Pair, pair_server: PostgresServer
) -> None:
    db = pair.world
    db.rotate()  # the clone now exists and is AWSCURRENT
    with admin_postgres(pair_server) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS public.shared_report (x int)")
        conn.execute(
            sql.SQL("GRANT SELECT ON public.shared_report TO {}").format(
                sql.Identifier(db.initial["username"])
            )
        )
    db.rotate()
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        with db.adapter.connect(db.secret(stage)) as conn:
            assert conn.execute("SELECT count(*) FROM public.shared_report").fetchone() == (0,)


def test_a_tampered_clone_is_repaired_by_the_next_rotation(
    pair: Pair, pair_server: PostgresServer
) -> None:
    db = pair.world
    base = db.initial["username"]
    db.rotate()
    db.rotate()  # AWSCURRENT is the base again; the clone is AWSPREVIOUS
    with admin_postgres(pair_server) as conn:
        revoke_membership(conn, pair, base, base + "_clone")
        conn.execute(
            sql.SQL("ALTER ROLE {} CONNECTION LIMIT 3").format(sql.Identifier(base + "_clone"))
        )
    db.rotate()  # setSecret mirrors the clone from the base again
    clone = db.secret("AWSCURRENT")
    with db.adapter.connect(clone) as conn:
        assert conn.execute("SELECT current_user").fetchone() == (base,)


def test_tampering_between_set_and_test_fails_at_test_secret(
    pair: Pair, pair_server: PostgresServer
) -> None:
    db = pair.world
    base = db.initial["username"]
    db.start_rotation(TOKEN)
    db.run("createSecret", TOKEN)
    db.run("setSecret", TOKEN)
    with admin_postgres(pair_server) as conn:
        revoke_membership(conn, pair, base, base + "_clone")
    with pytest.raises(ParityError, match=f"'{base}_clone' is not a member of '{base}'") as info:
        db.run("testSecret", TOKEN)
    assert info.value.step == "testSecret"
    assert "AWSCURRENT" not in db.versions()[TOKEN]


def rotate_expecting(pair: Pair, error: type[Exception], message: str) -> None:
    db = pair.world
    before_current = db.secret("AWSCURRENT")
    with pytest.raises(RotationFailed) as info:
        db.rotate(max_attempts=1)
    failed = info.value.report.steps[-1]
    assert failed.error is not None
    assert failed.error.startswith(error.__name__), failed.error
    assert message in failed.error, failed.error
    db.leaks.assert_absent(failed.error, where="the step's error")
    assert db.logs_in(before_current)


def test_missing_masterarn_without_a_default(pair: Pair) -> None:
    db = pair.world
    data = {k: v for k, v in db.initial.items() if k != "masterarn"}
    db.client.put_secret_value(SecretId=db.arn, SecretString=json.dumps(data))
    rotate_expecting(pair, ConfigurationError, "has no 'masterarn' key")


@pytest.mark.parametrize(
    ("masterarn", "message"),
    [
        (5, "must be a secret's ARN"),
        ("superuser", "must be a secret's ARN"),
        ("SELF", "names the secret being rotated"),
        # Allowed in SuperuserSecretArns for IAM; first in that list it became the default.
        ("arn:aws:secretsmanager:us-east-1:123456789012:secret:su-??????", "an IAM wildcard"),
    ],
)
def test_invalid_masterarn(pair: Pair, masterarn: object, message: str) -> None:
    db = pair.world
    value = db.arn if masterarn == "SELF" else masterarn
    db.client.put_secret_value(
        SecretId=db.arn, SecretString=json.dumps({**db.initial, "masterarn": value})
    )
    rotate_expecting(pair, ConfigurationError, message)


def test_superuser_for_another_engine(pair: Pair) -> None:
    db = pair.world
    db.client.put_secret_value(
        SecretId=pair.superuser_arn, SecretString=json.dumps({**pair.superuser, "engine": "mysql"})
    )
    rotate_expecting(pair, ConfigurationError, "superuser secret: engine 'mysql' is not handled")


def test_superuser_lacking_privileges(
    postgres_server: PostgresServer, leak_watch: LeakWatch
) -> None:
    with mock_aws(config=MOTO_CONFIG):
        weak = make_superuser(postgres_server, leak_watch, "weak_admin", createrole=False)
        pair = make_pair(postgres_server, leak_watch, base="alt_weak", superuser=weak)
        # Found before anything is created, with the fix named.
        rotate_expecting(pair, PrivilegeError, "is neither a superuser nor CREATEROLE")
        with admin_postgres(postgres_server) as conn:
            assert (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'alt_weak_clone'").fetchone()
                is None
            )


def test_base_username_too_long(postgres_server: PostgresServer, leak_watch: LeakWatch) -> None:
    with mock_aws(config=MOTO_CONFIG):
        pair = make_pair(postgres_server, leak_watch, base="a" * 58)
        rotate_expecting(pair, ConfigurationError, "over the postgresql limit of 63")


def test_pending_username_not_the_alternate(pair: Pair) -> None:
    db = pair.world
    db.start_rotation(TOKEN)
    db.client.put_secret_value(
        SecretId=db.arn,
        ClientRequestToken=TOKEN,
        VersionStages=["AWSPENDING"],
        SecretString=json.dumps({**db.initial, "username": "someone_else", "password": "x" * 20}),
    )
    before = db.versions()
    with pytest.raises(ConfigurationError, match="not the alternate"):
        db.run("setSecret", TOKEN)
    assert db.versions() == before
    assert isinstance(db.server, PostgresServer)
    with admin_postgres(db.server) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'someone_else'").fetchone() is None
        )


def test_the_function_default_superuser_is_used_without_masterarn(pair: Pair) -> None:
    db = pair.world
    data = {k: v for k, v in db.initial.items() if k != "masterarn"}
    db.client.put_secret_value(SecretId=db.arn, SecretString=json.dumps(data))
    assert isinstance(db.server, PostgresServer)
    assert db.server.tls_files is not None
    env = {
        ENV_TLS_CA_BUNDLE: str(db.server.tls_files.ca_cert),
        ENV_SUPERUSER_SECRET_ARN: pair.superuser_arn,
    }
    db.engine = build_engine(family_of("postgres"), ALTERNATING_USERS, client=db.client.sm, env=env)
    db.rotate()
    current = db.secret("AWSCURRENT")
    assert current.username.endswith("_clone")
    assert db.logs_in(current)


def test_the_clone_inherits_as_the_base_does(pair: Pair, pair_server: PostgresServer) -> None:
    base = pair.world.initial["username"]
    with admin_postgres(pair_server) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} NOINHERIT").format(sql.Identifier(base)))
    pair.world.rotate()
    pair.world.rotate()
    with admin_postgres(pair_server) as conn:
        row = conn.execute(
            "SELECT rolinherit FROM pg_roles WHERE rolname = %s", (base + "_clone",)
        ).fetchone()
    assert row == (False,)


def test_power_given_to_the_clone_between_set_and_test_fails_at_test_secret(
    pair: Pair, pair_server: PostgresServer
) -> None:
    db = pair.world
    base = db.initial["username"]
    db.start_rotation(TOKEN)
    db.run("createSecret", TOKEN)
    db.run("setSecret", TOKEN)
    with admin_postgres(pair_server) as conn:
        conn.execute(sql.SQL("ALTER ROLE {} CREATEDB").format(sql.Identifier(base + "_clone")))
        conn.execute(
            sql.SQL("GRANT pg_read_all_data TO {}").format(sql.Identifier(base + "_clone"))
        )
    with pytest.raises(ParityError) as info:
        db.run("testSecret", TOKEN)
    assert f"'{base}_clone' has CREATEDB, which '{base}' lacks" in str(info.value)
    assert f"'{base}_clone' is a member of 'pg_read_all_data'" in str(info.value)
    assert "AWSCURRENT" not in db.versions()[TOKEN]
