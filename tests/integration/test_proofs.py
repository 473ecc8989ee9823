"""Every account a rotation changes is one the secret proved it controls (issue 17), on real
servers: the proofs' other side too - what keeps working, what a refusal costs in failed logins,
and the settings of ordinary roles.

The attacks themselves are data (tests/data/hostile_inputs.json, run by test_attacks.py); these
are the cases that need more than one rotation or a server setting of their own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from moto import mock_aws
from psycopg import sql

from keyturn_local.driver import RotationFailed, register_stand_in_function, rotate
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres
from rotation_lambdas import AccountLockedError, AuthenticationError, DatabaseSecret, RotationEngine
from rotation_lambdas.adapters import mysql_users, postgres_roles
from rotation_lambdas.adapters.mysql_statements import ServerVersion
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine, make_adapter
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from rotation_lambdas.strategies.alternating_users import binding_note
from tests.support.db_setup import (
    max_password_errors,
    plain_login,
    refused_logins,
    setup_secret,
    trusted_login,
)
from tests.support.leaks import LeakWatch
from tests.support.snapshots import changes, snapshot
from tests.support.strict_sm import StrictSecretsManager

from .conftest import POSTGRES_SERVERS, Server, engine_for, family_of

pytestmark = pytest.mark.integration
_names = itertools.count(1)


@dataclass
class Rig:
    """A secret of one strategy on one server, its engine and the moto client."""

    server: Server
    engine_name: str
    client: StrictSecretsManager
    arn: str
    data: dict[str, Any]
    engine: RotationEngine
    leaks: LeakWatch

    @property
    def env(self) -> dict[str, str]:
        assert self.server.tls_files is not None
        return {ENV_TLS_CA_BUNDLE: str(self.server.tls_files.ca_cert)}

    def rotate(self, **kwargs: Any) -> None:
        rotate(self.client.sm, self.arn, self.engine, lambda_arn=self.function_arn, **kwargs)
        self.watch()

    def watch(self) -> None:
        for version in self.client.list_secret_version_ids(SecretId=self.arn)["Versions"]:
            text = self.client.get_secret_value(SecretId=self.arn, VersionId=version["VersionId"])
            self.leaks.add_secret_string(text["SecretString"])

    def current(self) -> DatabaseSecret:
        text = self.client.get_secret_value(SecretId=self.arn)["SecretString"]
        return DatabaseSecret.parse(text)

    def logs_in(self, secret: DatabaseSecret) -> bool:
        """Whether ``secret`` opens a session (refused, locked or not allowed: no)."""
        adapter = make_adapter(family_of(self.engine_name), ConnectSettings.from_env(self.env))
        try:
            conn = adapter.open(secret)
        except (AuthenticationError, AccountLockedError):
            return False
        adapter.close(conn)
        return True

    function_arn: str = ""


@pytest.fixture
def rig(leak_watch: LeakWatch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``rig(engine, strategy)`` makes a fresh user and secret in one moto."""
    with mock_aws(config=MOTO_CONFIG):
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        client = StrictSecretsManager(boto3.client("secretsmanager"))

        def make(engine_name: str, strategy: str, name: str | None = None) -> Rig:
            server: Server = request.getfixturevalue(f"{engine_name}_server")
            arn, data = setup_secret(
                server,
                strategy == ALTERNATING_USERS,
                client,
                leak_watch,
                name=name or f"pr{next(_names)}",
            )
            rig = Rig(server, engine_name, client, arn, data, None, leak_watch)  # type: ignore[arg-type]
            rig.engine = build_engine(
                family_of(engine_name), strategy, client=client.sm, env=rig.env
            )
            rig.function_arn = function_arn
            return rig

        yield make


def run_admin(server: Server, *statements: str, **names: str) -> None:
    """Statements as the server's administrator; ``{name}`` placeholders are quoted names."""
    if isinstance(server, PostgresServer):
        idents = {k: sql.Identifier(v) for k, v in names.items()}
        with admin_postgres(server) as pg:
            for statement in statements:
                pg.execute(sql.SQL(statement).format(**idents))
        return
    quoted = {k: "`" + v.replace("`", "``") + "`" for k, v in names.items()}
    with admin_mariadb(server) as my, my.cursor() as cur:
        for statement in statements:
            cur.execute(statement.format(**quoted))


def failed_rotation(rig: Rig) -> str:
    with pytest.raises(RotationFailed) as info:
        rig.rotate(max_attempts=1)
    error = info.value.report.steps[-1].error or ""
    rig.leaks.assert_absent(error, where="the step's error")
    rig.client.update_secret_version_stage(  # cancel it, as an operator would
        SecretId=rig.arn, VersionStage="AWSPENDING", RemoveFromVersionId=info.value.report.token
    )
    return error


# --- alternating users ---------------------------------------------------------------------------


@pytest.mark.parametrize("engine_name", ["postgres", "mariadb"])
def test_two_secrets_for_one_pair_the_second_is_refused(
    engine_name: str, rig: Any, leak_watch: LeakWatch
) -> None:
    """A second secret for a user pair would re-password the user the first secret's
    AWSCURRENT holds: refused, naming the conflict; the first goes on rotating."""
    first: Rig = rig(engine_name, ALTERNATING_USERS)
    second_arn = first.client.create_secret(
        Name=f"second/{first.data['username']}", SecretString=json.dumps(first.data)
    )["ARN"]
    second = Rig(**{**vars(first), "arn": second_arn})
    first.rotate()  # the clone is created for the first secret, and is its AWSCURRENT
    clone = first.current()
    before = snapshot(first.server)
    error = failed_rotation(second)
    assert error.startswith(("ConfigurationError", "AuthenticationError")), error
    if engine_name == "postgres":
        assert "for another secret" in error
        assert first.arn in error
    else:
        assert "not this secret's clone" in error
    assert changes(before, snapshot(first.server)) == {}
    assert first.logs_in(clone)
    first.rotate()
    first.rotate()
    assert first.current().username == clone.username


def test_a_clone_from_before_the_binding_is_proven_once_then_bound(
    rig: Any, leak_watch: LeakWatch
) -> None:
    """A clone made by an earlier version (or AWS's own function: a member of the base, no
    note): the first rotation proves it by AWSPREVIOUS and binds it; later rotations need no
    login for it."""
    world: Rig = rig("postgres", ALTERNATING_USERS)
    assert isinstance(world.server, PostgresServer)
    world.rotate()
    world.rotate()  # the base is AWSCURRENT, the clone AWSPREVIOUS
    base, clone = world.data["username"], world.data["username"] + "_clone"
    run_admin(world.server, "COMMENT ON ROLE {clone} IS NULL", clone=clone)
    world.rotate()
    with admin_postgres(world.server) as conn:
        (note,) = conn.execute(
            "SELECT shobj_description(oid, 'pg_authid') FROM pg_roles WHERE rolname = %s",
            (clone,),
        ).fetchone() or (None,)
    assert note == binding_note(world.arn, base)
    assert world.current().username == clone


def test_the_bound_clone_needs_no_login_of_the_other_user(
    rig: Any, postgres_server: PostgresServer, leak_watch: LeakWatch
) -> None:
    """Steady state on PostgreSQL: each step logs in once as the rotated pair's user (setSecret
    as AWSCURRENT's, testSecret as AWSPENDING's), never as the other user by AWSPREVIOUS, and the
    superuser's session of setSecret serves testSecret too."""
    world: Rig = rig("postgres", ALTERNATING_USERS)
    world.rotate()
    opened: list[str] = []
    adapter: Any = world.engine.strategy.adapter
    real_open = adapter.open

    def counting_open(secret: DatabaseSecret) -> Any:
        opened.append(secret.username)
        return real_open(secret)

    adapter.open = counting_open
    for _ in range(2):
        world.rotate()
    base = world.data["username"]
    users = [name for name in opened if name != base + "_admin"]
    # setSecret (AWSCURRENT's user), testSecret (AWSPENDING's), per rotation.
    assert users == [base + "_clone", base, base, base + "_clone"], opened
    assert opened.count(base + "_admin") <= 1, opened


def test_a_base_setting_only_a_superuser_may_copy_is_named_then_mirrored(
    rig: Any, leak_watch: LeakWatch
) -> None:
    """RDS's master user is not a superuser: log_statement on the base is refused before
    anything is created, with the fix; once granted SET on it (PostgreSQL 15+), it rotates and
    the clone carries the setting."""
    world: Rig = rig("postgres", ALTERNATING_USERS)
    assert isinstance(world.server, PostgresServer)
    base, admin = world.data["username"], world.data["username"] + "_admin"
    run_admin(world.server, "ALTER ROLE {base} SET log_statement = 'all'", base=base)
    before = snapshot(world.server)
    error = failed_rotation(world)
    assert 'GRANT SET ON PARAMETER "log_statement"' in error, error
    assert changes(before, snapshot(world.server)) == {}  # no clone, half-built or whole
    run_admin(world.server, "GRANT SET ON PARAMETER log_statement TO {admin}", admin=admin)
    world.rotate()
    clone = world.current()
    assert clone.username == base + "_clone"
    with world.engine.strategy.adapter.connect(clone) as conn:
        assert conn.execute("SHOW log_statement").fetchone() == ("all",)


# --- single user ---------------------------------------------------------------------------------


def test_single_user_under_a_trust_rule_changes_nothing(
    rig: Any, postgres_server: PostgresServer, leak_watch: LeakWatch
) -> None:
    """pg_hba.conf trusts the user: any password "logs in", AWSPENDING's too. The rotation
    must not report a password set that protects nothing."""
    world: Rig = rig("postgres", SINGLE_USER)
    user = world.data["username"]
    with trusted_login(postgres_server, user):
        before = snapshot(postgres_server)
        error = failed_rotation(world)
        assert "without asking for a password" in error, error
        assert changes(before, snapshot(postgres_server)) == {}


def test_single_user_with_ordinary_role_settings_rotates(
    rig: Any, postgres_server: PostgresServer, leak_watch: LeakWatch
) -> None:
    """ALTER ROLE app SET role = grp (every session acts as grp, which may not alter app) and a
    read-only default: the function's own session settings win."""
    world: Rig = rig("postgres", SINGLE_USER)
    user, group = world.data["username"], world.data["username"] + "_grp"
    run_admin(
        postgres_server,
        "DROP ROLE IF EXISTS {group}",
        "CREATE ROLE {group}",
        "GRANT {group} TO {user}",
        "ALTER ROLE {user} SET role = {group_name}",
        "ALTER ROLE {user} SET default_transaction_read_only = on",
        "ALTER ROLE {user} SET statement_timeout = '1ms'",
        group=group,
        user=user,
        group_name=group,
    )
    world.rotate()
    world.rotate()
    assert world.logs_in(world.current())


def test_single_user_refuses_other_host_accounts_it_can_see(
    rig: Any, mariadb_server: MariaDBServer, leak_watch: LeakWatch
) -> None:
    """'app'@'%' and 'app'@'127.0.0.1' share a password; a session changes only the account it
    matched, so the other would keep the old one. Seen: refused, both unchanged. Not seen (no
    SELECT on mysql.user): the rotation cannot tell, and preflight says so."""
    world: Rig = rig("mariadb", SINGLE_USER)
    user, password = world.data["username"], world.data["password"]
    with admin_mariadb(mariadb_server) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER %s@'127.0.0.1' IDENTIFIED BY %s", (user, password))
        cur.execute("GRANT SELECT ON mysql.user TO %s@'127.0.0.1'", (user,))
    before = snapshot(mariadb_server)
    error = failed_rotation(world)
    assert "also has accounts on hosts '%'" in error, error
    assert changes(before, snapshot(mariadb_server)) == {}
    from keyturn_cli.preflight import Preflight

    with admin_mariadb(mariadb_server) as conn, conn.cursor() as cur:
        cur.execute("REVOKE SELECT ON mysql.user FROM %s@'127.0.0.1'", (user,))
    checks = {
        c.name: c
        for c in Preflight(
            world.client.sm, world.arn, settings=ConnectSettings.from_env(world.env)
        ).run()
    }
    assert checks["other hosts"].status == "warn", checks["other hosts"]
    assert "cannot be ruled out" in checks["other hosts"].reason


def test_single_user_costs_one_refused_login_per_invocation(
    rig: Any, mariadb_server: MariaDBServer, leak_watch: LeakWatch
) -> None:
    """A single-user secret naming someone's account with a wrong password, on a server that
    blocks an account after 3 wrong passwords in a row: each setSecret invocation costs one
    refused login, so two (the service's attempt and a retry) leave the account working."""
    victim: Rig = rig("mariadb", SINGLE_USER)
    user, real = victim.data["username"], victim.data["password"]
    wrong = {**victim.data, "password": "Guessed-password-0001"}
    victim.client.put_secret_value(SecretId=victim.arn, SecretString=json.dumps(wrong))
    with max_password_errors(mariadb_server, 3):
        before = refused_logins(mariadb_server, user)
        with pytest.raises(RotationFailed):
            victim.rotate(max_attempts=2)
        assert refused_logins(mariadb_server, user) - before == 2
        assert plain_login(mariadb_server, user, real) == 0  # not blocked


# --- PostgreSQL 16's role administration (issue 21), and no half-built clone ------------------


@pytest.mark.parametrize("server_name", POSTGRES_SERVERS)
def test_a_base_the_superuser_does_not_administer(
    server_name: str, request: pytest.FixtureRequest, leak_watch: LeakWatch
) -> None:
    """RDS's master user is CREATEROLE, not SUPERUSER. From PostgreSQL 16 it may change only
    roles it holds ADMIN OPTION on: a base created by another role is named by preflight and
    refused by setSecret before anything exists; granted, it rotates. On 15, it rotates as is."""
    server: PostgresServer = request.getfixturevalue(f"{server_name}_server")
    with mock_aws(config=MOTO_CONFIG):
        client = StrictSecretsManager(boto3.client("secretsmanager"))
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        arn, data = setup_secret(server, True, client, leak_watch, name=f"adm{next(_names)}")
        base, admin = data["username"], data["username"] + "_admin"
        run_admin(server, "REVOKE {base} FROM {admin}", base=base, admin=admin)  # made by others
        assert server.tls_files is not None
        env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}
        engine = build_engine(family_of("postgres"), ALTERNATING_USERS, client=client.sm, env=env)
        world = Rig(server, "postgres", client, arn, data, engine, leak_watch, function_arn)
        from keyturn_cli.preflight import Preflight

        settings = ConnectSettings.from_env(env)
        checks = {c.name: c for c in Preflight(client.sm, arn, settings=settings).run()}
        if server.major is None:  # Debian's 15
            assert checks["administration"].status == "pass", checks["administration"]
            world.rotate()
            return
        assert checks["administration"].status == "fail"
        assert f'GRANT "{base}" TO "{admin}" WITH ADMIN OPTION' in checks["administration"].reason
        before = snapshot(server)
        error = failed_rotation(world)
        assert "holds no ADMIN OPTION" in error, error
        assert changes(before, snapshot(server)) == {}  # no clone, not even a half-built one
        run_admin(server, "GRANT {base} TO {admin} WITH ADMIN OPTION", base=base, admin=admin)
        world.rotate()
        world.rotate()
        assert world.logs_in(world.current())


@pytest.mark.parametrize("server_name", ["postgres", "mariadb"])
def test_a_failure_midway_leaves_no_clone_that_logs_in(
    server_name: str, rig: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """setSecret fails halfway through making the clone: PostgreSQL rolls the whole change
    back (no clone at all); the MySQL family created the clone locked, so it cannot log in
    while it lacks the base's grants. The next attempt completes it."""
    world: Rig = rig(engine_for(server_name), ALTERNATING_USERS)
    clone = world.data["username"] + "_clone"
    if server_name == "postgres":
        real_set = postgres_roles._alter_setting  # after CREATE ROLE: make it act as the base

        def fail_set(*args: Any) -> None:
            raise psycopg.OperationalError("injected: the connection dropped")

        monkeypatch.setattr(postgres_roles, "_alter_setting", fail_set)
    else:
        real_execute = mysql_users._execute

        def fail_grant(conn: Any, statement: str, params: Any = ()) -> Any:
            # After CREATE USER: the base's grants and options (the user has none but them).
            if statement.startswith(("GRANT", "ALTER USER")):
                raise pymysql.err.OperationalError(2013, "injected: the connection dropped")
            return real_execute(conn, statement, params)

        monkeypatch.setattr(mysql_users, "_execute", fail_grant)
    with pytest.raises(RotationFailed):
        world.rotate(max_attempts=1)
    pending = DatabaseSecret.parse(
        world.client.get_secret_value(SecretId=world.arn, VersionStage="AWSPENDING")["SecretString"]
    )
    assert pending.username == clone
    assert not world.logs_in(pending)
    if server_name == "postgres":
        assert isinstance(world.server, PostgresServer)
        with admin_postgres(world.server) as conn:
            assert (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (clone,)).fetchone()
                is None
            )
        monkeypatch.setattr(postgres_roles, "_alter_setting", real_set)
    else:
        assert isinstance(world.server, MariaDBServer)
        with admin_mariadb(world.server) as my:
            version = ServerVersion.parse(my.get_server_info())  # type: ignore[no-untyped-call]
            assert mysql_users.read_user(my, version, clone)["%"].options.locked
        monkeypatch.setattr(mysql_users, "_execute", real_execute)
    world.rotate(resume=True)
    assert world.current().username == clone
    assert world.logs_in(world.current())
