"""The client library as applications meet it, on real servers.

- TLS comes from the secret: a server without TLS is refused unless the secret (or the
  application, explicitly) says ``disable``; a server with TLS is verified.
- Servers answering in German: a refused password is recognised as one, by the client and by the
  rotation functions (which then rotate on such a server).
- Secrets RDS manages (only a username and password) with the host given by the application.
- A wrong password never locks an account (MariaDB ``max_password_errors = 3``), however many
  threads connect, and the connector recovers when the secret is fixed.
- A pre-fork server: a process forked while a refresh is in flight connects in the child.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from moto import mock_aws
from psycopg import sql

from client_lib import (
    AccountLocked,
    AuthenticationFailed,
    FallbackPolicy,
    RotationAwareConnector,
    SecretCache,
    SecretValueError,
    psycopg_connector,
    pymysql_connector,
)
from keyturn_local.demo import query_and_close
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, MotoServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres, create_app_user
from rotation_lambdas import AuthenticationError
from tests.support.db_setup import max_password_errors, new_password, plain_login
from tests.support.leaks import LeakWatch

from .conftest import DbWorld, make_world

pytestmark = pytest.mark.integration
Server = PostgresServer | MariaDBServer
ENGINES = ["postgres", "mariadb"]
DRIVER_ERROR: dict[str, type[Exception]] = {
    "postgres": psycopg.OperationalError,
    "mariadb": pymysql.err.OperationalError,
}
_numbers = iter(range(1, 10_000))
# Secrets Manager looked at again after 1 s rather than 5 when every version was refused: the
# tests see a fixed secret sooner.
QUICK = FallbackPolicy(recheck_current_after=1.0)


def fresh_name(prefix: str) -> str:
    return f"{prefix}_{next(_numbers)}"


@pytest.fixture
def secrets_manager() -> Iterator[Any]:
    with mock_aws(config=MOTO_CONFIG):
        yield boto3.client("secretsmanager")


def app_secret(
    client: Any,
    server: Server,
    engine: str,
    leaks: LeakWatch,
    extra: dict[str, Any] | None = None,
) -> tuple[str, dict[str, Any]]:
    """A new user on ``server`` and its secret (``extra`` keys added or, when None, removed)."""
    username = fresh_name("cl")
    password = new_password(leaks)
    create_app_user(server, engine, username, password)
    data: dict[str, Any] = {
        "engine": engine,
        "host": server.admin.host,
        "port": server.port,
        "username": username,
        "password": password,
    }
    data.update(extra or {})
    data = {key: value for key, value in data.items() if value is not None}
    arn = client.create_secret(Name=f"app/{username}", SecretString=json.dumps(data))["ARN"]
    return arn, data


def connector_for(
    engine: str, cache: SecretCache, secret_id: str, **kwargs: Any
) -> RotationAwareConnector[Any]:
    if engine == "postgres":
        return psycopg_connector(cache, secret_id, connect_timeout=5, **kwargs)
    return pymysql_connector(cache, secret_id, connect_timeout=5, **kwargs)


def ca_kwargs(engine: str, server: Server) -> dict[str, Any]:
    assert server.tls_files is not None
    key = "sslrootcert" if engine == "postgres" else "ssl_ca"
    return {key: str(server.tls_files.ca_cert)}


def uses_tls(conn: Any) -> bool:
    """Whether an open connection is encrypted, as the server sees it."""
    if isinstance(conn, psycopg.Connection):
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        return bool(row and row[0])
    with conn.cursor() as cur:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    return bool(row and row[1])


# -- TLS from the secret ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_servers() -> Iterator[dict[str, Server]]:
    """One server of each engine without TLS at all."""
    with PostgresServer(tls=False) as pg, MariaDBServer(tls=False) as my:
        yield {"postgres": pg, "mariadb": my}


# What each secret says about TLS; None: the key is absent (the default is verify-full).
REFUSED_WITHOUT_TLS = [
    {"sslmode": None},
    {"sslmode": "require"},
    {"sslmode": "verify-ca"},
    {"sslmode": "verify-full"},
    {"ssl": True},
    {"ssl": "true"},
]


@pytest.mark.parametrize("tls", REFUSED_WITHOUT_TLS, ids=lambda tls: json.dumps(tls))
@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_without_tls_is_refused_unless_the_secret_disables_it(
    engine: str,
    tls: dict[str, Any],
    plain_servers: dict[str, Server],
    secrets_manager: Any,
    leak_watch: LeakWatch,
) -> None:
    server = plain_servers[engine]
    arn, _ = app_secret(secrets_manager, server, engine, leak_watch, tls)
    # libpq's verify-ca needs a CA bundle file: give one, so the refusal comes from the missing TLS.
    verify_ca = engine == "postgres" and tls.get("sslmode") == "verify-ca"
    extra = {"sslrootcert": "/etc/ssl/certs/ca-certificates.crt"} if verify_ca else {}
    connector = connector_for(engine, SecretCache(secrets_manager), arn, **extra)
    with pytest.raises(DRIVER_ERROR[engine]) as caught:
        connector.connect()
    assert not isinstance(caught.value, AuthenticationFailed)
    assert connector.stats.refused_logins == 0  # a TLS failure is not a rotation: no fallback
    text = str(caught.value).lower()
    assert "ssl" in text or "tls" in text, text


# Plaintext only when the secret disables TLS, or the application explicitly does ("app").
PLAINTEXT = [{"sslmode": "disable"}, {"ssl": False}, {}]


@pytest.mark.parametrize("tls", PLAINTEXT, ids=["sslmode-disable", "ssl-false", "app"])
@pytest.mark.parametrize("engine", ENGINES)
def test_tls_disabled_by_the_secret_or_the_application_connects_in_plaintext(
    engine: str,
    tls: dict[str, Any],
    plain_servers: dict[str, Server],
    secrets_manager: Any,
    leak_watch: LeakWatch,
) -> None:
    arn, _ = app_secret(secrets_manager, plain_servers[engine], engine, leak_watch, tls)
    override: dict[str, Any] = {}
    if not tls:
        override = {"sslmode": "disable"} if engine == "postgres" else {"ssl_disabled": True}
    conn = connector_for(engine, SecretCache(secrets_manager), arn, **override).connect()
    try:
        assert not uses_tls(conn)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "tls", [{"sslmode": None}, {"sslmode": "verify-full"}, {"ssl": True}, {"sslmode": "require"}]
)
@pytest.mark.parametrize("engine", ENGINES)
def test_a_server_with_tls_is_spoken_to_over_tls(
    engine: str,
    tls: dict[str, Any],
    request: pytest.FixtureRequest,
    secrets_manager: Any,
    leak_watch: LeakWatch,
) -> None:
    server: Server = request.getfixturevalue(f"{engine}_server")
    arn, _ = app_secret(secrets_manager, server, engine, leak_watch, tls)
    conn = connector_for(
        engine, SecretCache(secrets_manager), arn, **ca_kwargs(engine, server)
    ).connect()
    try:
        assert uses_tls(conn)
    finally:
        conn.close()


@pytest.mark.parametrize("engine", ENGINES)
def test_verify_full_refuses_a_certificate_the_trust_store_does_not_know(
    engine: str, request: pytest.FixtureRequest, secrets_manager: Any, leak_watch: LeakWatch
) -> None:
    """No CA bundle given: the platform's trust store does not know the test CA."""
    server: Server = request.getfixturevalue(f"{engine}_server")
    arn, _ = app_secret(secrets_manager, server, engine, leak_watch)
    connector = connector_for(engine, SecretCache(secrets_manager), arn)
    with pytest.raises(DRIVER_ERROR[engine]) as caught:
        connector.connect()
    assert not isinstance(caught.value, AuthenticationFailed)
    assert connector.stats.refused_logins == 0
    assert "certificate" in str(caught.value).lower()


# -- RDS-managed secrets ------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_a_secret_with_only_username_and_password_connects_where_the_app_says(
    engine: str, request: pytest.FixtureRequest, secrets_manager: Any, leak_watch: LeakWatch
) -> None:
    server: Server = request.getfixturevalue(f"{engine}_server")
    arn, _ = app_secret(
        secrets_manager, server, engine, leak_watch, {"engine": None, "host": None, "port": None}
    )
    cache = SecretCache(secrets_manager)
    with pytest.raises(SecretValueError, match="host") as caught:
        connector_for(engine, cache, arn).connect()
    assert isinstance(caught.value, DRIVER_ERROR[engine])  # existing except clauses catch it
    where = {"host": server.admin.host, "port": server.port, **ca_kwargs(engine, server)}
    conn = connector_for(engine, cache, arn, **where).connect()
    try:
        assert uses_tls(conn)
    finally:
        conn.close()


# -- a server answering in German ---------------------------------------------------------------


@contextmanager
def mariadb_in_german(server: MariaDBServer) -> Iterator[None]:
    with admin_mariadb(server) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL lc_messages = 'de_DE'")
    try:
        yield
    finally:
        with admin_mariadb(server) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL lc_messages = 'en_US'")


@pytest.fixture(params=ENGINES)
def german_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server]]:
    """A server of each engine whose refused logins come back in German (checked here)."""
    if request.param == "postgres":
        yield "postgres", request.getfixturevalue("postgres_server_de")
        return
    server: MariaDBServer = request.getfixturevalue("mariadb_server")
    with mariadb_in_german(server):
        with pytest.raises(pymysql.err.OperationalError, match="Zugriffsberechtigung"):
            pymysql.connect(host=server.admin.host, port=server.port, user="nobody", password="x")
        yield "mariadb", server


@pytest.mark.parametrize("fixture", ["postgres_server", "postgres_server_de"])
def test_postgres_errors_after_the_password_was_accepted_are_not_refusals(
    fixture: str, request: pytest.FixtureRequest, secrets_manager: Any, leak_watch: LeakWatch
) -> None:
    """libpq sent the password, the server accepted it, then refused the session (its
    connection limit, a role without LOGIN): in English and in German, that is not a refused
    login, so no other version is tried and nothing is remembered as refused."""
    server: PostgresServer = request.getfixturevalue(fixture)
    arn, data = app_secret(secrets_manager, server, "postgres", leak_watch)
    role = sql.Identifier(data["username"])
    connector = connector_for(
        "postgres", SecretCache(secrets_manager), arn, **ca_kwargs("postgres", server)
    )
    with admin_postgres(server) as admin:
        admin.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT 1").format(role))
        held = connector.connect()  # the role's one session
        try:
            with pytest.raises(psycopg.OperationalError) as busy:
                connector.connect()
            assert not isinstance(busy.value, AuthenticationFailed)
        finally:
            held.close()
        assert connector.stats.refused_logins == 0
        query_and_close(connector.connect())  # at once: nothing was remembered as refused
        admin.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT -1 NOLOGIN").format(role))
        with pytest.raises(AccountLocked):
            connector.connect()
        assert connector.stats.refused_logins == 0
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN").format(role))
    query_and_close(connector.connect())


def make_wrong(client: Any, arn: str, data: dict[str, Any], leaks: LeakWatch) -> None:
    """Both AWSCURRENT and AWSPREVIOUS get a password the database does not know."""
    for _ in range(2):
        wrong = {**data, "password": new_password(leaks)}
        client.put_secret_value(SecretId=arn, SecretString=json.dumps(wrong))


def test_a_wrong_password_in_german_is_a_refused_login(
    german_server: tuple[str, Server], secrets_manager: Any, leak_watch: LeakWatch
) -> None:
    engine, server = german_server
    arn, data = app_secret(secrets_manager, server, engine, leak_watch)
    make_wrong(secrets_manager, arn, data, leak_watch)
    connector = connector_for(
        engine, SecretCache(secrets_manager), arn, policy=QUICK, **ca_kwargs(engine, server)
    )
    with pytest.raises(DRIVER_ERROR[engine]) as caught:  # what applications already catch
        connector.connect()
    assert isinstance(caught.value, AuthenticationFailed)
    assert not isinstance(caught.value, AccountLocked)
    assert connector.stats.refused_logins == 2  # AWSCURRENT, then AWSPREVIOUS
    # The secret is fixed: the connector logs in once it looks at Secrets Manager again.
    secrets_manager.put_secret_value(SecretId=arn, SecretString=json.dumps(data))
    time.sleep(QUICK.recheck_current_after)
    query_and_close(connector.connect())


def test_rotation_functions_rotate_on_a_server_answering_in_german(
    german_server: tuple[str, Server], leak_watch: LeakWatch
) -> None:
    engine, server = german_server
    with mock_aws(config=MOTO_CONFIG):
        db = make_world(engine, server, leak_watch, username=fresh_name("de"))
        old = db.secret("AWSCURRENT")
        for _ in range(2):
            db.rotate()
        assert db.logs_in(db.secret("AWSCURRENT"))
        assert not db.logs_in(old)  # a refusal in German is a refusal, not an error
        # The password changed behind the secret's back: a refused login, named as one.
        change_password_out_of_band(db, new_password(leak_watch))
        token = str(uuid.uuid4())
        db.start_rotation(token)
        db.run("createSecret", token)
        with pytest.raises(AuthenticationError, match=r"AWSCURRENT password of user .* does not"):
            db.run("setSecret", token)


def change_password_out_of_band(db: DbWorld, password: str) -> None:
    username = db.secret("AWSCURRENT").username
    if isinstance(db.server, PostgresServer):
        with admin_postgres(db.server) as pg:
            pg.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(username), sql.Literal(password)
                )
            )
        return
    with admin_mariadb(db.server) as my, my.cursor() as cur:
        cur.execute("SET PASSWORD FOR %s@'%%' = PASSWORD(%s)", (username, password))


# -- lockouts -----------------------------------------------------------------------------------

LOCKOUT_AFTER = 3  # MariaDB max_password_errors, as MySQL's FAILED_LOGIN_ATTEMPTS 3


def test_a_wrong_password_never_locks_the_account(
    mariadb_server: MariaDBServer,
    secrets_manager: Any,
    leak_watch: LeakWatch,
    figures: Callable[[str, str], None],
) -> None:
    server = mariadb_server
    with max_password_errors(server, LOCKOUT_AFTER):
        # The control: three plain wrong logins do block an account here.
        _, control = app_secret(secrets_manager, server, "mariadb", leak_watch)
        codes = [plain_login(server, control["username"], "wrong") for _ in range(LOCKOUT_AFTER)]
        assert codes == [1045] * LOCKOUT_AFTER
        assert plain_login(server, control["username"], control["password"]) == 4150  # blocked

        arn, data = app_secret(secrets_manager, server, "mariadb", leak_watch)
        make_wrong(secrets_manager, arn, data, leak_watch)
        cache = SecretCache(secrets_manager)
        connector = connector_for(
            "mariadb",
            cache,
            arn,
            policy=QUICK,
            **ca_kwargs("mariadb", server),
        )
        outcomes: list[str] = []
        lock = threading.Lock()
        stop = time.monotonic() + 3.0

        def worker() -> None:
            while time.monotonic() < stop:
                try:
                    connector.connect().close()
                    outcome = "connected"
                except Exception as exc:  # noqa: BLE001 - every outcome is counted
                    outcome = type(exc).__name__
                with lock:
                    outcomes.append(outcome)

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outcomes, "no connect() ran"
        assert set(outcomes) == {"AuthenticationFailed"}, sorted(set(outcomes))
        assert connector.stats.refused_logins < LOCKOUT_AFTER
        # Secrets Manager looked at once per recheck interval, not per call.
        describes = cache.stats.describes
        assert describes <= 3.0 / QUICK.recheck_current_after + 2, describes
        # The account is not blocked: its real password still logs in.
        assert plain_login(server, data["username"], data["password"]) == 0
        # And the connector recovers as soon as the secret is fixed.
        secrets_manager.put_secret_value(SecretId=arn, SecretString=json.dumps(data))
        time.sleep(QUICK.recheck_current_after)
        query_and_close(connector.connect())
    figures(
        "operations",
        f"lockout: {len(outcomes)} connect() calls from 8 threads over 3 s with a wrong password, "
        f"{connector.stats.refused_logins} refused login(s) at the server, "
        f"{describes} DescribeSecret calls",
    )


# -- pre-fork servers ---------------------------------------------------------------------------


def _child_connects(
    connector: RotationAwareConnector[Any],
    expected_password: str,
    results: Any,
    expire: Callable[[], None],
) -> None:
    """In the forked child: connect through the parent's connector and cache."""
    try:
        expire()  # the cached value expired: a get() needs the fetch the parent had in flight
        conn = connector.connect()
        query_and_close(conn)
        current = connector.credentials()
        results.put("ok" if current.password == expected_password else "stale credentials")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        results.put(f"{type(exc).__name__}: {exc}")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_refresh_is_in_flight_connects(
    postgres_server: PostgresServer, moto_server: MotoServer, leak_watch: LeakWatch
) -> None:
    """gunicorn --preload: the cache and connector are made before the fork. The parent forks
    while its background refresh is stuck in a Secrets Manager call; the password changed; the
    child has neither that thread nor its socket, and must connect on its own."""
    moto_server.reset()
    client = boto3.client("secretsmanager", endpoint_url=moto_server.endpoint)
    arn, data = app_secret(client, postgres_server, "postgres", leak_watch)
    parent = os.getpid()
    gate = threading.Event()

    def stall_in_parent(**_: Any) -> None:
        if os.getpid() == parent:
            gate.wait(30)

    skipped = [0.0]  # seconds the cache's clock is ahead of the real one

    def clock() -> float:
        return time.monotonic() + skipped[0]

    cache = SecretCache(client, ttl=60, jitter=0.0, refresh_ahead=0.5, clock=clock)
    connector = psycopg_connector(
        cache, arn, connect_timeout=5, **ca_kwargs("postgres", postgres_server)
    )
    query_and_close(connector.connect())
    # The password changes (as a rotation would), and the parent's refresh gets stuck.
    password = new_password(leak_watch)
    change = {**data, "password": password}
    admin_client = boto3.session.Session().client(
        "secretsmanager", endpoint_url=moto_server.endpoint
    )
    admin_client.put_secret_value(SecretId=arn, SecretString=json.dumps(change))
    with admin_postgres(postgres_server) as conn:
        conn.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(data["username"]), sql.Literal(password)
            )
        )
    client.meta.events.register("before-send.secrets-manager", stall_in_parent)
    skipped[0] = 70  # due for refresh, still valid: the next get() refreshes in the background
    cache.get(arn)
    deadline = time.monotonic() + 5
    while not cache._inflight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cache._inflight, "no refresh in flight to fork across"

    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(
        target=_child_connects,
        args=(connector, password, results, lambda: skipped.__setitem__(0, 200)),
    )
    child.start()
    try:
        outcome = results.get(timeout=20)
    finally:
        child.join(30)
        gate.set()
    assert outcome == "ok"
    assert child.exitcode == 0
    # The parent's stuck refresh completes once released; the parent connects too.
    query_and_close(connector.connect())


def test_a_mysql_server_that_never_answers_costs_one_budget_not_forever(
    secrets_manager: Any,
) -> None:
    """connect_timeout bounds only PyMySQL's TCP connect: the handshake and login must fit the
    connector's budget too, or a hung server holds the caller (and every caller waiting for the
    same credentials) forever."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # accepts, never answers
        secret = {
            "engine": "mysql",
            "host": "127.0.0.1",
            "port": listener.getsockname()[1],
            "username": "app",
            "password": "never-sent-0123",
        }
        arn = secrets_manager.create_secret(Name="app/hung", SecretString=json.dumps(secret))["ARN"]
        connector = pymysql_connector(
            SecretCache(secrets_manager), arn, policy=FallbackPolicy(budget=2.0)
        )
        outcomes: list[BaseException] = []

        def connect() -> None:
            try:
                connector.connect()
            except BaseException as exc:  # noqa: BLE001 - the test reads it
                outcomes.append(exc)

        thread = threading.Thread(target=connect, daemon=True)
        thread.start()
        thread.join(30)  # a liveness bound, far above the budget: not a timing assertion
        assert not thread.is_alive(), "connect() still blocked"
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], pymysql.err.OperationalError)
    assert not isinstance(outcomes[0], AuthenticationFailed)
