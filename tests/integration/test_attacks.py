"""Attacks on alternating users by whoever may write a rotated secret, on real servers.

The cases are data (tests/data/hostile_inputs.json, "attacks"). Each runs with two servers of its
engine, A and B, that both hold the same user names: every attack must fail before any change,
with the named error, and leave every password, account, attribute, membership and grant on both
servers as it was, and AWSCURRENT as it was. The same set-up without the attack must rotate (so no
case passes because something else broke), and so must a superuser secret that names the same
server by another host name.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pymysql
import pytest
from moto import mock_aws
from psycopg import sql

from keyturn_local.driver import RotationFailed, register_stand_in_function, rotate
from keyturn_local.servers import MOTO_CONFIG, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres, create_admin_user, create_app_user
from rotation_lambdas import ConfigurationError, DatabaseSecret, RotationError
from rotation_lambdas.adapters import ServerMarker
from rotation_lambdas.adapters.mysql_grants import quote_ident
from rotation_lambdas.handlers import ALTERNATING_USERS, build_engine
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE
from tests.support.db_setup import new_password, refused_logins, trusted_login
from tests.support.leaks import LeakWatch
from tests.support.snapshots import changes, snapshot
from tests.support.strict_sm import StrictSecretsManager

from .conftest import ALL_SERVERS, POSTGRES_SERVERS, Server, engine_for, family_of

pytestmark = pytest.mark.integration
ATTACKS: list[dict[str, Any]] = json.loads(
    (Path(__file__).parents[1] / "data" / "hostile_inputs.json").read_text()
)["attacks"]["cases"]
CASES = [
    pytest.param(server, case, id=f"{server}: {case['name']}")
    for case in ATTACKS
    for engine in case["engines"]
    for server in (POSTGRES_SERVERS if engine == "postgres" else [engine])
]
_numbers = itertools.count(1)


@dataclass
class Names:
    user: str
    clone: str
    other: str
    other_table: str
    admin: str
    long: str  # 60 bytes: its clone's name is cut by PostgreSQL to ...
    long_victim: str  # ... this one, 63 bytes: another account

    @classmethod
    def fresh(cls) -> Names:
        n = f"atk{next(_numbers)}_{uuid.uuid4().hex[:4]}"
        long = (n + "_long_").ljust(60, "x")
        return cls(
            f"{n}_user",
            f"{n}_user_clone",
            f"{n}_other",
            f"{n}_table",
            f"{n}_admin",
            long,
            (long + "_clone")[:63],
        )


@dataclass
class Attack:
    """Servers A and B with the same user names, the secrets in moto, and the function."""

    engine_name: str
    a: Server
    b: Server
    names: Names
    passwords: dict[str, str]  # per server: the user's real password
    client: StrictSecretsManager
    arn: str
    superuser_arns: dict[str, str]
    function_arn: str
    ca_bundle: Path
    leaks: LeakWatch

    def engine(self) -> Any:
        env = {ENV_TLS_CA_BUNDLE: str(self.ca_bundle)}
        family = family_of(self.engine_name)
        return build_engine(family, ALTERNATING_USERS, client=self.client.sm, env=env)

    def current(self) -> str:
        response = self.client.get_secret_value(SecretId=self.arn, VersionStage="AWSCURRENT")
        text: str = response["SecretString"]
        return text


def prepare_server(
    engine_name: str, server: Server, names: Names, password: str, admin: str
) -> None:
    """``user`` with privileges of its own, ``other``, and the superuser ``admin``."""
    create_app_user(server, engine_name, names.user, password)
    create_admin_user(server, names.admin, admin, drop=[names.clone], administers=[names.user])
    if isinstance(server, PostgresServer):
        with admin_postgres(server) as pg:
            pg.execute(sql.SQL("CREATE ROLE {}").format(sql.Identifier(names.other)))
            pg.execute(
                sql.SQL("CREATE SCHEMA {} AUTHORIZATION {}").format(
                    sql.Identifier(names.user), sql.Identifier(names.user)
                )
            )
        return
    with admin_mariadb(server) as my, my.cursor() as cur:
        cur.execute(f"CREATE USER {quote_ident(names.other)}@'%'")  # no args: % is literal
        cur.execute(f"CREATE DATABASE {quote_ident(names.user)}")
        cur.execute(f"GRANT SELECT ON {quote_ident(names.user)}.* TO %s@'%%'", (names.user,))


def run_setup(server: Server, statements: list[str], names: Names) -> None:
    if isinstance(server, PostgresServer):
        idents = {k: sql.Identifier(v) for k, v in vars(names).items()}
        with admin_postgres(server) as pg:
            for statement in statements:
                pg.execute(sql.SQL(statement).format(**idents))  # test data, names quoted
        return
    quoted = {k: quote_ident(v).replace("%%", "%") for k, v in vars(names).items()}
    with admin_mariadb(server) as my, my.cursor() as cur:
        for statement in statements:
            cur.execute(statement.format(**quoted))


def expand(value: Any, names: Names, password: str) -> Any:
    if not isinstance(value, str):
        return value
    value = value.replace("$PASSWORD", password).replace("$GUESS", "Guessed-password-0001")
    return value.format(**vars(names))


@pytest.fixture
def attack_world(request: pytest.FixtureRequest, leak_watch: LeakWatch, tmp_path: Path) -> Any:
    def make(server_name: str, case: dict[str, Any]) -> Iterator[Attack]:
        # A is the server under attack (each PostgreSQL version); B, another of its engine.
        engine_name = engine_for(server_name)
        a: Server = request.getfixturevalue(f"{server_name}_server")
        b: Server = request.getfixturevalue(f"{engine_name}_server_b")
        names = Names.fresh()
        passwords, admins = {}, {}
        for label, server in (("A", a), ("B", b)):
            passwords[label], admins[label] = new_password(leak_watch), new_password(leak_watch)
            prepare_server(engine_name, server, names, passwords[label], admins[label])
        run_setup(a, case.get("setup", {}).get(engine_name, []), names)
        bundle = tmp_path / "both-cas.pem"  # the function trusts both servers' CAs
        bundle.write_text(
            "".join(s.tls_files.ca_cert.read_text() for s in (a, b) if s.tls_files is not None)
        )
        with mock_aws(config=MOTO_CONFIG):
            client = StrictSecretsManager(boto3.client("secretsmanager"))
            superuser_arns = {}
            for label, server in (("A", a), ("B", b)):
                superuser = {
                    "engine": engine_name,
                    "host": server.admin.host,
                    "port": server.port,
                    "username": names.admin,
                    "password": admins[label],
                }
                superuser_arns[label] = client.create_secret(
                    Name=f"su/{label}/{names.admin}", SecretString=json.dumps(superuser)
                )["ARN"]
            # A relay: the secret names B, a server the writer controls, with its password there.
            home = "B" if case.get("relay") else "A"
            secret = {
                "engine": engine_name,
                "host": (b if home == "B" else a).admin.host,
                "port": (b if home == "B" else a).port,
                "username": names.user,
                "password": passwords[home],
                "masterarn": superuser_arns[case.get("superuser", "A")],
            }
            for key, value in case.get("secret", {}).items():
                secret[key] = expand(value, names, passwords["A"])
            # The writer may also choose AWSPREVIOUS: write it first, then the current value.
            first = secret
            if "previous" in case:
                first = {
                    **secret,
                    **{k: expand(v, names, passwords["A"]) for k, v in case["previous"].items()},
                }
            arn = client.create_secret(Name=f"app/{names.user}", SecretString=json.dumps(first))[
                "ARN"
            ]
            if first is not secret:
                client.put_secret_value(SecretId=arn, SecretString=json.dumps(secret))
            function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
            teardown = case.get("teardown", {}).get(engine_name, [])
            try:
                yield Attack(
                    engine_name,
                    a,
                    b,
                    names,
                    passwords,
                    client,
                    arn,
                    superuser_arns,
                    function_arn,
                    bundle,
                    leak_watch,
                )
            finally:
                run_setup(a, teardown, names)

    return make


def relay_locks(world: Attack, engine: Any, mode: object, stack: ExitStack) -> None:
    """Play a lying host: every lock the account's session takes (on B) is also taken on A by
    another account, as a host relaying the proof would: A's administrator (``True``), or a
    low-privilege account that then runs a routine the rotated account defined (``"definer"``:
    while it runs, MariaDB's process list shows the definer as the session's user)."""
    adapter = engine.strategy.admin
    real_claim = adapter.claim_marker

    def relayed(conn: Any) -> ServerMarker:
        marker: ServerMarker = real_claim(conn)
        if isinstance(world.a, PostgresServer):
            pg = stack.enter_context(admin_postgres(world.a))
            pg.execute("SELECT pg_advisory_lock(%s)", (int(marker.name),))
            pg.execute(
                "SELECT set_config('application_name', %s, false)",
                (f"keyturn-proof-{int(marker.name):x}",),
            )
            return marker
        if mode == "definer":
            my = pymysql.connect(
                host=world.a.admin.host, port=world.a.port, user=world.names.other, password=""
            )
            stack.callback(my.close)
            with my.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0)", (marker.name,))
            call = f"CALL {quote_ident(world.names.user)}.hold(3)"
            running = threading.Thread(target=lambda: my.cursor().execute(call))
            running.start()
            stack.callback(running.join)
            time.sleep(0.3)  # the routine is running when the superuser looks
        else:
            admin = stack.enter_context(admin_mariadb(world.a))
            with admin.cursor() as cur:
                cur.execute("SELECT GET_LOCK(%s, 0)", (marker.name,))
        return marker

    adapter.claim_marker = relayed


@pytest.mark.parametrize(("server_name", "case"), CASES)
def test_attack_fails_before_any_change(
    server_name: str, case: dict[str, Any], attack_world: Any
) -> None:
    for world in attack_world(server_name, case):
        with ExitStack() as relays:
            attack(world, case, relays)


def attack(world: Attack, case: dict[str, Any], relays: ExitStack) -> None:
    """Run the rotation as the service would; it must fail, naming why, and change nothing.

    It may cost the account AWSCURRENT names one refused login (the proof that fails), and no
    other account any: whoever writes a secret must not lock out someone else's account."""
    if case.get("trust"):
        assert isinstance(world.a, PostgresServer)
        relays.enter_context(trusted_login(world.a, world.names.user))
    named = json.loads(world.current())["username"]
    accounts = {v for k, v in vars(world.names).items() if k != "admin"} | {named}
    refused = {(s, u): refused_logins(s, u) for s in (world.a, world.b) for u in accounts}
    before = {"A": snapshot(world.a), "B": snapshot(world.b)}
    current = world.current()
    engine = world.engine()
    if case.get("relay"):
        relay_locks(world, engine, case["relay"], relays)
    if "pending" in case:
        # The writer also wrote AWSPENDING, before the service's createSecret.
        token = str(uuid.uuid4())
        world.client.rotate_secret(
            SecretId=world.arn,
            ClientRequestToken=token,
            RotationLambdaARN=world.function_arn,
            RotationRules={"AutomaticallyAfterDays": 30},
        )
        pending = {**json.loads(current), "username": world.names.clone}
        for key, value in case["pending"].items():
            pending[key] = expand(value, world.names, world.passwords["A"])
        world.client.put_secret_value(
            SecretId=world.arn,
            ClientRequestToken=token,
            VersionStages=["AWSPENDING"],
            SecretString=json.dumps(pending),
        )
        event = {"SecretId": world.arn, "ClientRequestToken": token}
        engine({**event, "Step": "createSecret"})
        with pytest.raises(RotationError) as info:
            engine({**event, "Step": "setSecret"})
        error = f"{type(info.value).__name__}: {info.value}"
    else:
        with pytest.raises(RotationFailed) as failed:
            rotate(
                world.client.sm, world.arn, engine, lambda_arn=world.function_arn,
                max_attempts=1,
            )  # fmt: skip
        step = failed.value.report.steps[-1]
        assert step.step.value == "setSecret"
        error = step.error or ""
    assert error.startswith(case["error"]), error
    assert expand(case["message"], world.names, "") in error, error
    world.leaks.assert_absent(error, where="the step's error")
    assert changes(before["A"], snapshot(world.a)) == {}, "server A changed"
    assert changes(before["B"], snapshot(world.b)) == {}, "server B changed"
    assert world.current() == current
    costs = {k: refused_logins(*k) - n for k, n in refused.items()}
    assert all(n <= (1 if user == named else 0) for (_, user), n in costs.items()), costs


@pytest.mark.parametrize("server_name", ALL_SERVERS)
@pytest.mark.parametrize("superuser_host", ["same", "alias"])
def test_without_the_attack_the_same_set_up_rotates(
    server_name: str, superuser_host: str, attack_world: Any
) -> None:
    """The control: no attack, and a superuser secret naming the same server as ``localhost``
    (another name for it, like a cluster's writer endpoint) rotate twice, both users working."""
    for world in attack_world(server_name, {}):
        if superuser_host == "alias":
            su_arn = world.superuser_arns["A"]
            data = json.loads(world.client.get_secret_value(SecretId=su_arn)["SecretString"])
            world.client.put_secret_value(
                SecretId=su_arn, SecretString=json.dumps({**data, "host": "localhost"})
            )
        engine = world.engine()
        for expected in (world.names.clone, world.names.user):
            rotate(world.client.sm, world.arn, engine, lambda_arn=world.function_arn)
            current = DatabaseSecret.parse(world.current())
            world.leaks.add(current.password)
            assert current.username == expected
            with engine.strategy.adapter.connect(current):
                pass


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("sql_mode", "ANSI_QUOTES"),
        ("sql_mode", "NO_BACKSLASH_ESCAPES"),
        ("sql_mode", "ORACLE"),
        ("sql_quote_show_create", "OFF"),
    ],
)
def test_the_server_settings_do_not_widen_the_clone(
    variable: str, value: str, attack_world: Any
) -> None:
    """The base may read `ho\\_app_N` (a literal underscore) but not `hoXapp_N`; a server whose
    settings change how SHOW GRANTS quotes names must not give the clone the wildcard `ho_app_N`."""
    n = next(_numbers)
    exact, lookalike = f"ho_app_{n}", f"hoXapp_{n}"
    setup = [
        f"CREATE DATABASE `{exact}`",
        f"CREATE DATABASE `{lookalike}`",
        f"CREATE TABLE `{exact}`.t (x INT)",
        f"CREATE TABLE `{lookalike}`.t (x INT)",
        f"GRANT SELECT ON `{exact.replace('_', chr(92) + '_')}`.* TO {{user}}@'%'",
    ]
    for world in attack_world("mariadb", {"setup": {"mariadb": setup}}):
        with admin_mariadb(world.a) as my, my.cursor() as cur:
            cur.execute(f"SELECT @@GLOBAL.{variable}")
            (original,) = cur.fetchone() or ("",)
            cur.execute(f"SET GLOBAL {variable} = %s", (value,))
        try:
            engine = world.engine()
            rotate(world.client.sm, world.arn, engine, lambda_arn=world.function_arn)
            clone = DatabaseSecret.parse(world.current())
            world.leaks.add(clone.password)
            assert clone.username == world.names.clone
            with engine.strategy.adapter.connect(clone) as conn, conn.cursor() as cur:
                cur.execute(f"SELECT count(*) FROM `{exact}`.t")  # noqa: S608 - our names
                with pytest.raises(pymysql.err.OperationalError) as denied:
                    cur.execute(f"SELECT count(*) FROM `{lookalike}`.t")  # noqa: S608
                assert denied.value.args[0] == 1142  # SELECT command denied
            # Compared as the function does, in a session of its own (with its own settings).
            superuser = DatabaseSecret.parse(
                world.client.get_secret_value(SecretId=world.superuser_arns["A"])["SecretString"]
            )
            admin = engine.strategy.admin
            with engine.strategy.adapter.connect(superuser) as su:
                assert admin.parity_differences(su, world.names.user, clone.username) == []
            # A session that keeps the server's settings reads grants it cannot trust: refused.
            if value != "NO_BACKSLASH_ESCAPES":
                with admin_mariadb(world.a) as my, pytest.raises(ConfigurationError) as refused:
                    admin.parity_differences(my, world.names.user, clone.username)
                assert "cannot be read unambiguously" in str(refused.value)
        finally:
            with admin_mariadb(world.a) as my, my.cursor() as cur:
                cur.execute(f"SET GLOBAL {variable} = %s", (original,))
