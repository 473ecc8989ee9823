"""Alternating users on real MariaDB 10.11: two hosts, every grant kind, roles, REQUIRE SSL."""

from __future__ import annotations

import itertools
import json
import secrets
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_local.driver import RotationFailed, register_stand_in_function
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer
from keyturn_local.users import admin_mariadb
from rotation_lambdas import (
    ConfigurationError,
    ParityError,
    PrivilegeError,
    TlsMode,
)
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.mysql_statements import ServerVersion
from rotation_lambdas.adapters.mysql_users import hosts_of, read_user
from rotation_lambdas.handlers import ALTERNATING_USERS, build_engine, make_adapter
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.leaks import LeakWatch
from tests.support.snapshots import changes, snapshot
from tests.support.strict_sm import StrictSecretsManager

from .conftest import DbWorld, family_of, rotate_alternating

pytestmark = pytest.mark.integration
TOKEN = "33333333-4444-5555-6666-777777777777"
HOSTS = ("%", "localhost")
_numbers = itertools.count(1)


def run_admin(server: MariaDBServer, *statements: tuple[str, tuple[Any, ...]]) -> None:
    with admin_mariadb(server) as conn, conn.cursor() as cur:
        for statement, params in statements:
            cur.execute(statement, params)


def make_superuser(
    server: MariaDBServer, leaks: LeakWatch, name: str, *, powerful: bool
) -> dict[str, Any]:
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    grant = (
        "GRANT ALL PRIVILEGES ON *.* TO %s@'%%' WITH GRANT OPTION"
        if powerful
        else "GRANT SELECT ON mysql.* TO %s@'%%'"
    )
    run_admin(
        server,
        ("DROP USER IF EXISTS %s@'%%'", (name,)),
        ("CREATE USER %s@'%%' IDENTIFIED BY %s", (name, password)),
        (grant, (name,)),
    )
    return {
        "engine": "mariadb",
        "host": server.admin.host,
        "port": server.port,
        "username": name,
        "password": password,
    }


def make_base_user(server: MariaDBServer, leaks: LeakWatch, base: str) -> dict[str, Any]:
    """``base`` on two hosts, with database, column, routine and role grants and REQUIRE SSL."""
    password = secrets.token_urlsafe(20)
    leaks.add(password)
    db, role = f"shop_{base}", f"reporting_{base}"
    statements: list[tuple[str, tuple[Any, ...]]] = [
        (f"DROP DATABASE IF EXISTS `{db}`", ()),
        (f"CREATE DATABASE `{db}`", ()),
        (f"CREATE TABLE `{db}`.customers (id INT PRIMARY KEY, name TEXT, secret TEXT)", ()),
        (f"CREATE PROCEDURE `{db}`.refresh() SELECT 1", ()),
        ("DROP ROLE IF EXISTS %s", (role,)),
        (f"CREATE ROLE `{role}`", ()),
        (f"GRANT SELECT ON `{db}`.* TO `{role}`", ()),
    ]
    for host in HOSTS:
        statements += [
            ("DROP USER IF EXISTS %s@%s", (base, host)),
            ("DROP USER IF EXISTS %s@%s", (base + "_clone", host)),
            ("CREATE USER %s@%s IDENTIFIED BY %s REQUIRE SSL", (base, host, password)),
            (f"GRANT `{role}` TO %s@%s", (base, host)),
            (f"SET DEFAULT ROLE `{role}` FOR %s@%s", (base, host)),
        ]
    statements += [
        (f"GRANT SELECT, INSERT ON `{db}`.* TO %s@'%%' WITH GRANT OPTION", (base,)),
        (f"GRANT SELECT (id), UPDATE (name) ON `{db}`.customers TO %s@'%%'", (base,)),
        (f"GRANT EXECUTE ON PROCEDURE `{db}`.refresh TO %s@'%%'", (base,)),
        (f"GRANT SELECT ON `{db}`.* TO %s@'localhost'", (base,)),
    ]
    run_admin(server, *statements)
    return {
        "engine": "mariadb",
        "host": server.admin.host,
        "port": server.port,
        "username": base,
        "password": password,
        "dbname": db,
    }


class MyPair:
    def __init__(
        self, server: MariaDBServer, leaks: LeakWatch, *, base: str, powerful: bool = True
    ) -> None:
        assert server.tls_files is not None
        self.server = server
        self.base = base
        initial = make_base_user(server, leaks, base)
        self.superuser = make_superuser(server, leaks, f"su_{base}"[:32], powerful=powerful)
        if powerful:  # granting a role needs ADMIN OPTION on it, as on RDS
            run_admin(
                server,
                (
                    f"GRANT `reporting_{base}` TO %s@'%%' WITH ADMIN OPTION",
                    (self.superuser["username"],),
                ),
            )
        client = StrictSecretsManager(boto3.client("secretsmanager"))
        self.superuser_arn = client.create_secret(
            Name=f"su/{base}", SecretString=json.dumps(self.superuser)
        )["ARN"]
        initial["masterarn"] = self.superuser_arn
        arn = client.create_secret(Name=f"alt/{base}", SecretString=json.dumps(initial))["ARN"]
        env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}
        engine = build_engine(family_of("mariadb"), ALTERNATING_USERS, client=client.sm, env=env)
        adapter = make_adapter(family_of("mariadb"), ConnectSettings.from_env(env))
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        self.world = DbWorld(
            client, arn, function_arn, engine, leaks, "mariadb", server, adapter, initial
        )

    def differences(self) -> list[str]:
        adapter = self.world.adapter
        assert isinstance(adapter, MySQLAdapter)
        with admin_mariadb(self.server) as conn:
            return adapter.parity_differences(conn, self.base, self.base + "_clone")


@pytest.fixture
def pair(mariadb_server: MariaDBServer, leak_watch: LeakWatch) -> Iterator[MyPair]:
    with mock_aws(config=MOTO_CONFIG):
        yield MyPair(mariadb_server, leak_watch, base=f"myalt_{next(_numbers)}")


def test_ten_rotations_alternate_and_both_users_keep_working(pair: MyPair) -> None:
    def at_parity() -> None:
        assert pair.differences() == []

    rotate_alternating(pair.world, pair.base, 10, after_each=at_parity)


def test_the_clone_is_faithful_on_every_host(pair: MyPair) -> None:
    pair.world.rotate()
    clone = pair.base + "_clone"
    with admin_mariadb(pair.server) as conn:
        version = ServerVersion.parse(conn.get_server_info())  # type: ignore[no-untyped-call]
        base_accounts = read_user(conn, version, pair.base)
        clone_accounts = read_user(conn, version, clone)
        assert set(clone_accounts) == set(base_accounts) == set(HOSTS)
        for host in HOSTS:
            base_grants, clone_grants = base_accounts[host].grants, clone_accounts[host].grants
            assert clone_grants.privileges == base_grants.privileges
            assert clone_grants.roles == base_grants.roles
            assert (
                clone_grants.default_roles
                == base_grants.default_roles
                == ((f"reporting_{pair.base}", None),)
            )
            assert clone_accounts[host].options == base_accounts[host].options
            assert clone_accounts[host].options.require.kind == "SSL"
        percent = clone_accounts["%"].grants
        assert {p.name for p in percent.privileges} >= {
            "SELECT",
            "INSERT",
            "UPDATE",
            "EXECUTE",
            "GRANT OPTION",
        }
        assert any(p.column == "id" for p in percent.privileges)


def test_the_clone_requires_tls_like_the_base(pair: MyPair) -> None:
    pair.world.rotate()
    clone = pair.world.secret("AWSCURRENT")
    plaintext = make_adapter(
        family_of("mariadb"), ConnectSettings(TlsMode.DISABLE, min_tls_mode=TlsMode.DISABLE)
    )
    assert plaintext.try_connect(clone) is None  # REQUIRE SSL: refused without TLS
    assert pair.world.logs_in(clone)


def test_a_grant_added_to_the_base_later_reaches_both_users(pair: MyPair) -> None:
    db = pair.world
    db.rotate()  # the clone exists and is AWSCURRENT
    run_admin(
        pair.server, (f"GRANT DELETE ON `shop_{pair.base}`.customers TO %s@'%%'", (pair.base,))
    )
    db.rotate()  # the base is pending; the clone (current) is mirrored again
    assert pair.differences() == []
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        with db.adapter.connect(db.secret(stage)) as conn, conn.cursor() as cur:
            cur.execute("DELETE FROM customers WHERE id = -1")


def test_a_revoked_grant_is_repaired_by_the_next_rotation(pair: MyPair) -> None:
    db = pair.world
    db.rotate()
    db.rotate()  # AWSCURRENT is the base; the clone waits
    run_admin(
        pair.server,
        (f"REVOKE INSERT ON `shop_{pair.base}`.* FROM %s@'%%'", (pair.base + "_clone",)),
    )
    assert any("lacks INSERT" in d for d in pair.differences())
    db.rotate()
    assert pair.differences() == []


def test_tampering_between_set_and_test_fails_at_test_secret(pair: MyPair) -> None:
    db = pair.world
    db.start_rotation(TOKEN)
    db.run("createSecret", TOKEN)
    db.run("setSecret", TOKEN)
    run_admin(
        pair.server,
        (
            f"REVOKE EXECUTE ON PROCEDURE `shop_{pair.base}`.refresh FROM %s@'%%'",
            (pair.base + "_clone",),
        ),
    )
    with pytest.raises(
        ParityError, match=f"'{pair.base}_clone'@'%' lacks EXECUTE ON PROCEDURE"
    ) as info:
        db.run("testSecret", TOKEN)
    db.leaks.assert_exception_clean(info.value)
    assert "AWSCURRENT" not in db.versions()[TOKEN]


def test_superuser_lacking_privileges_changes_nothing(
    mariadb_server: MariaDBServer, leak_watch: LeakWatch
) -> None:
    with mock_aws(config=MOTO_CONFIG):
        pair = MyPair(mariadb_server, leak_watch, base="myweak", powerful=False)
        current = pair.world.secret("AWSCURRENT")
        with pytest.raises(RotationFailed) as info:
            pair.world.rotate(max_attempts=1)
        error = info.value.report.steps[-1].error or ""
        assert error.startswith(PrivilegeError.__name__), error
        assert "PROCESS privilege" in error  # the first thing it lacks, before any change
        leak_watch.assert_absent(error, where="the step's error")
        with admin_mariadb(mariadb_server) as conn:
            assert hosts_of(conn, "myweak_clone") == set()
        assert pair.world.logs_in(current)


def test_base_username_too_long(mariadb_server: MariaDBServer, leak_watch: LeakWatch) -> None:
    with mock_aws(config=MOTO_CONFIG):
        pair = MyPair(mariadb_server, leak_watch, base="b" * 27)
        with pytest.raises(RotationFailed) as info:
            pair.world.rotate(max_attempts=1)
        error = info.value.report.steps[-1].error or ""
        assert error.startswith(ConfigurationError.__name__)
        assert "over the mysql limit of 32" in error
        assert info.value.report.steps[-1].step.value == "createSecret"


def test_superuser_on_another_host_name_of_the_same_server(pair: MyPair) -> None:
    """Like a cluster's writer endpoint: the superuser's secret names its own host."""
    db = pair.world
    assert db.initial["host"] == "127.0.0.1"
    db.client.put_secret_value(
        SecretId=pair.superuser_arn,
        SecretString=json.dumps({**pair.superuser, "host": "localhost"}),
    )
    db.rotate()
    assert db.logs_in(db.secret("AWSCURRENT"))
    assert pair.differences() == []


def test_account_options_are_mirrored_and_a_foreign_clone_is_refused(pair: MyPair) -> None:
    """Resource limits and the expiry policy follow the base. A pre-existing clone whose password
    no version of the secret holds is someone's account, not ours: refused, untouched, until it
    is dropped; then the clone the rotation creates mirrors the base."""
    base, clone = pair.base, pair.base + "_clone"
    run_admin(
        pair.server,
        (
            "ALTER USER %s@'%%' WITH MAX_QUERIES_PER_HOUR 1000 MAX_STATEMENT_TIME 5 "
            "PASSWORD EXPIRE INTERVAL 90 DAY",
            (base,),
        ),
        ("CREATE USER %s@'%%' IDENTIFIED BY 'Old-clone-1' ACCOUNT LOCK", (clone,)),
        ("ALTER USER %s@'%%' WITH MAX_USER_CONNECTIONS 1", (clone,)),
        (f"GRANT DELETE ON `shop_{base}`.* TO %s@'%%'", (clone,)),
    )
    before = snapshot(pair.server)
    with pytest.raises(RotationFailed) as info:
        pair.world.rotate(max_attempts=1)
    error = info.value.report.steps[-1].error or ""
    assert "refusing to change" in error, error
    assert "not this secret's clone" in error, error
    assert changes(before, snapshot(pair.server)) == {}
    run_admin(pair.server, ("DROP USER %s@'%%'", (clone,)))
    pair.world.client.update_secret_version_stage(  # cancel the refused rotation
        SecretId=pair.world.arn,
        VersionStage="AWSPENDING",
        RemoveFromVersionId=info.value.report.token,
    )
    pair.world.rotate()
    assert pair.differences() == []
    with admin_mariadb(pair.server) as conn:
        version = ServerVersion.parse(conn.get_server_info())  # type: ignore[no-untyped-call]
        options = read_user(conn, version, clone)["%"].options
    assert options.limits == (("MAX_QUERIES_PER_HOUR", "1000"), ("MAX_STATEMENT_TIME", "5"))
    assert options.expiry_policy == "INTERVAL 90 DAY"
    assert not options.locked
    assert pair.world.logs_in(pair.world.secret("AWSCURRENT"))


def test_options_tampered_between_set_and_test_fail_at_test_secret(pair: MyPair) -> None:
    db = pair.world
    db.start_rotation(TOKEN)
    db.run("createSecret", TOKEN)
    db.run("setSecret", TOKEN)
    run_admin(
        pair.server, ("ALTER USER %s@'%%' WITH MAX_QUERIES_PER_HOUR 5", (pair.base + "_clone",))
    )
    with pytest.raises(ParityError, match="other resource limits"):
        db.run("testSecret", TOKEN)
    assert "AWSCURRENT" not in db.versions()[TOKEN]


def test_our_clone_that_defines_objects_and_outgrew_the_base_still_rotates(pair: MyPair) -> None:
    """A clone that was AWSCURRENT may define views; after a grant is revoked from the base it
    holds more than the base. It is this secret's clone (AWSPREVIOUS still logs in as it, proven
    on the superuser's server): mirrored, not refused."""
    db, base, clone = pair.world, pair.base, pair.base + "_clone"
    db.rotate()  # the clone is AWSCURRENT
    run_admin(
        pair.server,
        (f"CREATE DEFINER = %s@'%%' VIEW `shop_{base}`.by_clone AS SELECT 1 AS one", (clone,)),
    )
    db.rotate()  # the base is AWSCURRENT, the clone AWSPREVIOUS
    run_admin(pair.server, (f"REVOKE INSERT ON `shop_{base}`.* FROM %s@'%%'", (base,)))
    assert any("has extra INSERT" in d for d in pair.differences())
    db.rotate()  # the clone is pending: its extra is revoked, nothing refused
    assert pair.differences() == []
    assert db.secret("AWSCURRENT").username == clone
