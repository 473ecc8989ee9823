"""`keyturn preflight`, `status` and `rotate` against the moto server and the real databases.

In-process (``keyturn_cli.main``) for speed; tests/integration/test_commands.py runs the
installed command in separate processes.
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
from typing import Any

import boto3
import pytest
from psycopg import sql

from keyturn_cli import main
from keyturn_local.driver import register_stand_in_function, rotate
from keyturn_local.servers import MariaDBServer, MotoServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres, create_admin_user
from rotation_lambdas import DatabaseSecret
from rotation_lambdas.handlers import SINGLE_USER, build_engine, make_adapter
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.db_setup import max_password_errors
from tests.support.leaks import LeakWatch

from .conftest import ENGINES, Server, family_of, new_app_user

pytestmark = pytest.mark.integration
_names = itertools.count(1)


class Cli:
    """Runs `keyturn` in-process against the moto server; returns (exit code, stdout, stderr)."""

    def __init__(self, moto: MotoServer, capfd: pytest.CaptureFixture[str]) -> None:
        self.moto = moto
        self.capfd = capfd
        self.sm: Any = boto3.client("secretsmanager", endpoint_url=moto.endpoint)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capfd.readouterr()
        code = main([*args, "--endpoint-url", self.moto.endpoint])
        out, err = self.capfd.readouterr()
        return code, out, err

    def preflight(self, arn: str, *extra: str) -> dict[str, dict[str, str]]:
        code, out, _ = self("preflight", arn, "--json", *extra)
        report = json.loads(out)
        assert code == (0 if report["ok"] else 1)
        return {check["name"]: check for check in report["checks"]}

    def secret(self, data: dict[str, Any]) -> str:
        arn: str = self.sm.create_secret(Name=f"cli/{next(_names)}", SecretString=json.dumps(data))[
            "ARN"
        ]
        return arn


@pytest.fixture
def cli(
    moto_server: MotoServer, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Cli:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    return Cli(moto_server, capfd)


@pytest.fixture(params=ENGINES)
def server(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Server:
    found: Server = request.getfixturevalue(f"{request.param}_server")
    assert found.tls_files is not None
    monkeypatch.setenv(ENV_TLS_CA_BUNDLE, str(found.tls_files.ca_cert))
    return found


def engine_of(server: Server) -> str:
    return "postgres" if isinstance(server, PostgresServer) else "mariadb"


def statuses(checks: dict[str, dict[str, str]]) -> dict[str, str]:
    return {name: check["status"] for name, check in checks.items()}


def admin_secret(server: Server, leaks: LeakWatch, base: str) -> dict[str, Any]:
    username, password = f"{base}_admin", secrets.token_urlsafe(20)
    leaks.add(password)
    create_admin_user(server, username, password, drop=[base + "_clone"], administers=[base])
    return {
        "engine": engine_of(server),
        "host": server.admin.host,
        "port": server.port,
        "username": username,
        "password": password,
    }


def test_preflight_passes_for_both_strategies_and_changes_nothing(
    cli: Cli, server: Server, leak_watch: LeakWatch
) -> None:
    app = new_app_user(engine_of(server), server, leak_watch)
    checks = cli.preflight(cli.secret(app))
    # MariaDB: an application user may not read the account list, so preflight says that other
    # accounts of the name (which a single-user rotation would not change) cannot be ruled out.
    unseen = {"other hosts": "warn"} if engine_of(server) == "mariadb" else {}
    assert {k: v for k, v in statuses(checks).items() if v != "pass"} == unseen, checks
    assert "single_user" in checks["engine"]["reason"]
    assert "may change its own password" in checks["privileges"]["reason"]

    admin = admin_secret(server, leak_watch, app["username"])
    alternating = cli.secret({**app, "masterarn": cli.secret(admin)})
    checks = cli.preflight(alternating)
    assert set(statuses(checks).values()) == {"pass"}, checks
    assert f"may create '{app['username']}_clone'" in checks["privileges"]["reason"]
    # Dry runs only: the password still logs in, and no clone was created.
    adapter: Any = make_adapter(family_of(engine_of(server)), ConnectSettings.from_env())
    with adapter.connect(DatabaseSecret.from_mapping(app)):
        pass
    with adapter.connect(DatabaseSecret.from_mapping(admin)) as conn:
        assert not adapter.user_exists(conn, app["username"] + "_clone")


def test_preflight_warns_when_a_lockout_policy_meets_single_user(
    cli: Cli,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert mariadb_server.tls_files is not None
    monkeypatch.setenv(ENV_TLS_CA_BUNDLE, str(mariadb_server.tls_files.ca_cert))
    app = new_app_user("mariadb", mariadb_server, leak_watch)
    with max_password_errors(mariadb_server, 3):
        checks = cli.preflight(cli.secret(app))
    assert checks["lockout"]["status"] == "warn"
    assert "after 3 failed logins" in checks["lockout"]["reason"]
    assert "alternating users" in checks["lockout"]["hint"]
    assert "lockout" not in cli.preflight(cli.secret(app))  # the server's default: no limit


def test_preflight_names_a_wrong_password(cli: Cli, server: Server, leak_watch: LeakWatch) -> None:
    app = new_app_user(engine_of(server), server, leak_watch)
    wrong = secrets.token_urlsafe(20)
    leak_watch.add(wrong)
    checks = cli.preflight(cli.secret({**app, "password": wrong}))
    assert statuses(checks) == {
        "secret": "pass",
        "format": "pass",
        "engine": "pass",
        "network": "pass",
        "tls": "pass",
        "login": "fail",
        "names": "skip",
        "account": "skip",
        "other hosts": "skip",
        "privileges": "skip",
    }
    assert "login refused" in checks["login"]["reason"]
    assert "stored password" in checks["login"]["hint"]


def test_preflight_names_an_unreachable_host(
    cli: Cli, server: Server, leak_watch: LeakWatch
) -> None:
    app = new_app_user(engine_of(server), server, leak_watch)
    import socket

    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    code, out, _ = cli("preflight", cli.secret({**app, "port": closed}))
    assert code == 1
    assert f"FAIL  network            cannot reach 127.0.0.1:{closed}" in out
    assert "security groups" in out
    assert "SKIP  login" in out


def test_preflight_names_a_tls_misconfiguration(
    cli: Cli, server: Server, leak_watch: LeakWatch, monkeypatch: pytest.MonkeyPatch, request: Any
) -> None:
    app = new_app_user(engine_of(server), server, leak_watch)
    other: Server = request.getfixturevalue(
        "mariadb_server" if engine_of(server) == "postgres" else "postgres_server"
    )
    assert other.tls_files is not None
    monkeypatch.setenv(ENV_TLS_CA_BUNDLE, str(other.tls_files.ca_cert))  # the wrong CA
    checks = cli.preflight(cli.secret(app))
    assert (checks["tls"]["status"], checks["login"]["status"]) == ("fail", "skip")
    assert "TLS failed" in checks["tls"]["reason"]
    assert "no plaintext retry" in checks["tls"]["hint"]


def test_preflight_names_missing_privileges(
    cli: Cli, server: Server, leak_watch: LeakWatch
) -> None:
    engine = engine_of(server)
    app = new_app_user(engine, server, leak_watch)
    # Single user: the server refuses writes to this user (a read-only session or server).
    if isinstance(server, PostgresServer):
        with admin_postgres(server) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} SET default_transaction_read_only = on").format(
                    sql.Identifier(app["username"])
                )
            )
        # The function's sessions set their own (read-write) default: no longer a problem.
        checks = cli.preflight(cli.secret(app))
        assert checks["privileges"]["status"] == "pass", checks["privileges"]
    else:
        with admin_mariadb(server) as my_conn, my_conn.cursor() as cur:
            cur.execute("SET GLOBAL read_only = 1")
            try:
                checks = cli.preflight(cli.secret(app))
            finally:
                cur.execute("SET GLOBAL read_only = 0")
        assert checks["privileges"]["status"] == "fail"
        assert "read-only (@@read_only = 1)" in checks["privileges"]["reason"]

    # Alternating users: a "superuser" that may log in but not administer users.
    weak = new_app_user(engine, server, leak_watch)
    alternating = cli.secret({**app, "masterarn": cli.secret(weak)})
    checks = cli.preflight(alternating)
    assert statuses(checks)["superuser login"] == "pass"
    if engine == "postgres":
        # Named before anything could be created, with the fix.
        assert checks["administration"]["status"] == "fail"
        assert "neither a superuser nor CREATEROLE" in checks["administration"]["reason"]
    else:
        # It cannot read who holds the proof's lock (mysql.user, the process list).
        assert checks["same server"]["status"] == "fail"
        assert "the superuser may not look up" in checks["same server"]["reason"]


def test_preflight_names_bad_secrets(cli: Cli, leak_watch: LeakWatch) -> None:
    checks = cli.preflight("arn:aws:secretsmanager:us-east-1:123456789012:secret:cli/none-AbCdEf")
    assert checks["secret"]["status"] == "fail"
    assert "ResourceNotFoundException" in checks["secret"]["reason"]
    assert checks["login"]["status"] == "skip"
    not_json = cli.sm.create_secret(Name=f"cli/{next(_names)}", SecretString="not json")["ARN"]
    checks = cli.preflight(not_json)
    assert checks["format"]["status"] == "fail"
    missing = cli.secret({"engine": "postgres", "host": "db", "username": "app", "password": "x"})
    checks = cli.preflight(missing, "--strategy", "alternating_users")
    assert checks["superuser secret"]["status"] == "fail"
    assert "masterarn" in checks["superuser secret"]["reason"]


def test_status_pages_through_every_secret_and_flags_a_stuck_rotation(cli: Cli) -> None:
    cli.moto.reset()
    for number in range(105):  # more than one page of ListSecrets
        cli.sm.create_secret(Name=f"bulk/{number:03}", SecretString="{}")
    lam = boto3.client("lambda", endpoint_url=cli.moto.endpoint)
    iam = boto3.client("iam", endpoint_url=cli.moto.endpoint)
    stand_in = register_stand_in_function(lam, iam)
    stuck = cli.sm.create_secret(Name="app/stuck", SecretString="{}")["ARN"]
    cli.sm.rotate_secret(
        SecretId=stuck, RotationLambdaARN=stand_in, RotationRules={"AutomaticallyAfterDays": 7}
    )
    code, out, _ = cli("status", "--json")
    assert code == 0
    rows = {row["name"]: row for row in json.loads(out)}
    assert len(rows) == 106
    assert rows["bulk/104"]["state"] == "off"
    assert rows["app/stuck"]["state"] == "STUCK"
    assert rows["app/stuck"]["rotation_enabled"] is True
    assert rows["app/stuck"]["function"] == stand_in.rsplit(":", 1)[-1]
    code, out, _ = cli("status")
    assert "STUCK: AWSPENDING is on version" in out
    assert "106 secret(s); 1 need attention" in out


@pytest.mark.parametrize("finishes", [True, False])
def test_rotate_by_the_service_is_followed(
    cli: Cli, postgres_server: Server, leak_watch: LeakWatch, finishes: bool
) -> None:
    assert postgres_server.tls_files is not None
    app = new_app_user("postgres", postgres_server, leak_watch)
    arn = cli.secret(app)
    lam = boto3.client("lambda", endpoint_url=cli.moto.endpoint)
    iam = boto3.client("iam", endpoint_url=cli.moto.endpoint)
    engine = build_engine(
        family_of("postgres"),
        SINGLE_USER,
        client=cli.sm,
        env={ENV_TLS_CA_BUNDLE: str(postgres_server.tls_files.ca_cert)},
    )
    # Rotation configured on the secret, and one rotation done, as after enabling it.
    rotate(cli.sm, arn, engine, lambda_arn=register_stand_in_function(lam, iam))
    stop = threading.Event()
    errors: list[BaseException] = []

    def service() -> None:
        # What Secrets Manager does after RotateSecret: invoke the function for each step.
        try:
            while not stop.wait(0.1):
                stages = cli.sm.describe_secret(SecretId=arn)["VersionIdsToStages"]
                if any(s == ["AWSPENDING"] for s in stages.values()):
                    rotate(cli.sm, arn, engine, resume=True, max_attempts=1)
                    return
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    thread = threading.Thread(target=service)
    if finishes:
        thread.start()
    try:
        code, out, err = cli("rotate", arn, "--wait", "20" if finishes else "2")
    finally:
        stop.set()
        if finishes:
            thread.join(30)
    assert errors == []
    for version in cli.sm.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        try:
            response = cli.sm.get_secret_value(SecretId=arn, VersionId=version)
        except cli.sm.exceptions.ResourceNotFoundException:
            continue  # the empty version RotateSecret made, never filled (nobody rotated)
        leak_watch.add_secret_string(response["SecretString"])
    assert "asked Secrets Manager to rotate" in out
    if finishes:
        assert code == 0, err
        assert "AWSPENDING" in out
        assert "succeeded in" in out
        new = DatabaseSecret.parse(cli.sm.get_secret_value(SecretId=arn)["SecretString"])
        assert new.password != app["password"]
        settings = ConnectSettings(ca_bundle=str(postgres_server.tls_files.ca_cert))
        with make_adapter(family_of("postgres"), settings).connect(new):
            pass
    else:
        assert code == 2
        assert "did not finish within 2 s" in err
        assert "keyturn preflight" in err


def test_preflight_runs_the_proofs_set_secret_makes(
    cli: Cli,
    server: Server,
    leak_watch: LeakWatch,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
) -> None:
    engine = engine_of(server)
    other: Server = request.getfixturevalue(f"{engine}_server_b")
    bundle = tmp_path / "cas.pem"  # trust both servers, so only the proofs can fail
    bundle.write_text("".join(s.tls_files.ca_cert.read_text() for s in (server, other)))  # type: ignore[union-attr]
    monkeypatch.setenv(ENV_TLS_CA_BUNDLE, str(bundle))
    app = new_app_user(engine, server, leak_watch)
    base = app["username"]
    admin = admin_secret(server, leak_watch, base)
    masterarn = cli.secret(admin)

    checks = cli.preflight(
        cli.secret({**app, "password": "Guessed-password-1", "masterarn": masterarn})
    )
    assert checks["login"]["status"] == "fail"
    assert {checks[n]["status"] for n in ("account", "same server", "clone")} == {"skip"}

    # The superuser secret of another server that has the same user names.
    new_app_user(engine, other, leak_watch, username=base)
    elsewhere = cli.secret(admin_secret(other, leak_watch, base))
    checks = cli.preflight(cli.secret({**app, "masterarn": elsewhere}))
    assert checks["account"]["status"] == "pass"
    assert checks["superuser login"]["status"] == "pass"
    assert checks["same server"]["status"] == "fail"
    assert "is not the server of" in checks["same server"]["reason"]
    assert checks["clone"]["status"] == checks["privileges"]["status"] == "skip"

    # A clone that already exists with more than the base.
    if engine == "postgres":
        assert isinstance(server, PostgresServer)
        with admin_postgres(server) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN CREATEDB").format(sql.Identifier(base + "_clone"))
            )
        expected = ("clone", "has CREATEDB, which")
    else:
        assert isinstance(server, MariaDBServer)
        with admin_mariadb(server) as my, my.cursor() as cur:
            cur.execute("CREATE USER %s@'%%' IDENTIFIED BY 'Clone-password-1'", (base + "_clone",))
            cur.execute("GRANT SELECT ON mysql.* TO %s@'%%'", (base + "_clone",))
        # Someone's account of that name, whose password no version of the secret holds.
        expected = ("other user", "not this secret's clone")
    checks = cli.preflight(cli.secret({**app, "masterarn": masterarn}))
    assert checks["same server"]["status"] == "pass"
    name, reason = expected
    assert checks[name]["status"] == "fail", checks[name]
    assert reason in checks[name]["reason"], checks[name]

    # TLS below the function's floor: refused before anything is sent.
    checks = cli.preflight(cli.secret({**app, "sslmode": "require"}))
    assert checks["tls"]["status"] == "fail"
    assert "weaker than the function's minimum" in checks["tls"]["reason"]
    assert checks["login"]["status"] == "skip"
