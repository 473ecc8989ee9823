"""Zero failed operations across rotations: 8 threads connect and query while secrets rotate.

For each engine and strategy, the rotation functions rotate the secret 10 times while 8 threads
keep opening connections through client_lib and running a query. Every operation must succeed:
with plain connectors (also against a PostgreSQL server answering in German), with the secrets
read through aws-secretsmanager-caching, with psycopg_pool given its own ``conninfo`` and
``kwargs``, with SQLAlchemy engines given a URL and ``connect_args``, and with asyncio. The same
harness with a naive client (aws-secretsmanager-caching + a plain connect) counts the operations
it would have failed: reported in the test summary, not asserted.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from aws_secretsmanager_caching import SecretCache as AwsSecretCache
from aws_secretsmanager_caching import SecretCacheConfig

from client_lib import (
    AwsCachingSource,
    Credentials,
    RotationAwareConnector,
    SecretCache,
    psycopg_async_connector,
    psycopg_async_pool,
    psycopg_connector,
    psycopg_pool,
    pymysql_connector,
    sqlalchemy_async_engine,
    sqlalchemy_engine,
)
from keyturn_local.demo import query_and_close as query
from keyturn_local.driver import RotationFailed, register_stand_in_function, rotate
from keyturn_local.servers import MariaDBServer, MotoServer, PostgresServer
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE
from tests.support.db_setup import max_password_errors, plain_login, setup_secret
from tests.support.leaks import LeakWatch

from .conftest import family_of

pytestmark = pytest.mark.integration
THREADS = 8
ROTATIONS = 10
# Seconds between rotations: far shorter than production's (hours), long enough that one
# connect() is not overtaken by several rotations (each would cost it a refused login, and it
# gives up after FallbackPolicy.max_failed_logins of them to protect lockout policies).
ROTATION_GAP = 1.0
BASELINE: list[str] = []  # printed by tests/conftest.py's terminal summary
STRATEGIES = [SINGLE_USER, ALTERNATING_USERS]
# "postgres-de": PostgreSQL answering in German (lc_messages = de_DE.UTF-8).
SERVERS = ["postgres", "postgres-de", "mariadb"]


@dataclass
class Load:
    operations: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)


def hammer(open_and_query: Callable[[], None], stop: threading.Event) -> Load:
    load = Load()

    def worker() -> None:
        while not stop.is_set():
            try:
                open_and_query()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                with load.lock:
                    load.failures.append(f"{type(exc).__name__}: {exc}")
            else:
                with load.lock:
                    load.operations += 1

    load.threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in load.threads:
        thread.start()
    return load


def finish(load: Load, stop: threading.Event) -> None:
    stop.set()
    for thread in load.threads:
        thread.join(30)


@dataclass
class World:
    engine_name: str  # "postgres" or "mariadb"
    server: PostgresServer | MariaDBServer
    client: Any
    arn: str
    ca: str
    engine: Any
    stand_in: str
    cache: SecretCache
    moto: MotoServer
    leaks: LeakWatch

    def rotate(self, times: int = ROTATIONS) -> None:
        for index in range(times):
            if index:
                time.sleep(ROTATION_GAP)
            rotate(self.client, self.arn, self.engine, lambda_arn=self.stand_in, max_attempts=1)

    def watch_versions(self) -> None:
        for version in self.client.describe_secret(SecretId=self.arn)["VersionIdsToStages"]:
            self.leaks.add_secret_string(
                self.client.get_secret_value(SecretId=self.arn, VersionId=version)["SecretString"]
            )


@pytest.fixture
def world(
    request: pytest.FixtureRequest, moto_server: MotoServer, leak_watch: LeakWatch
) -> Callable[[str, str, str], World]:
    def make(server_name: str, strategy: str, name: str) -> World:
        """A fresh moto server state, a user and its secret, the rotation engine, a cache."""
        engine_name = "mariadb" if server_name == "mariadb" else "postgres"
        fixture = {"postgres-de": "postgres_server_de"}.get(server_name, f"{engine_name}_server")
        server: Any = request.getfixturevalue(fixture)
        moto_server.reset()
        endpoint = moto_server.endpoint
        client = boto3.client("secretsmanager", endpoint_url=endpoint)
        arn, _ = setup_secret(server, strategy == ALTERNATING_USERS, client, leak_watch, name=name)
        assert server.tls_files is not None
        ca = str(server.tls_files.ca_cert)
        engine = build_engine(
            family_of(engine_name), strategy, client=client, env={ENV_TLS_CA_BUNDLE: ca}
        )
        stand_in = register_stand_in_function(
            boto3.client("lambda", endpoint_url=endpoint),
            boto3.client("iam", endpoint_url=endpoint),
        )
        cache = SecretCache(boto3.client("secretsmanager", endpoint_url=endpoint), ttl=300)
        return World(
            engine_name, server, client, arn, ca, engine, stand_in, cache, moto_server, leak_watch
        )

    return make


def connector_for(world: World, cache: SecretCache) -> RotationAwareConnector[Any]:
    if world.engine_name == "postgres":
        return psycopg_connector(cache, world.arn, sslrootcert=world.ca, connect_timeout=5)
    return pymysql_connector(cache, world.arn, ssl_ca=world.ca, connect_timeout=5)


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("server_name", SERVERS)
def test_no_failed_operation_across_ten_rotations(
    server_name: str, strategy: str, world: Callable[[str, str, str], World]
) -> None:
    w = world(server_name, strategy, f"load_{server_name[:2]}{server_name[-2:]}")
    connector = connector_for(w, w.cache)

    def keyturn_op() -> None:
        query(connector.connect())

    aws = AwsSecretCache(
        config=SecretCacheConfig(),
        client=boto3.client("secretsmanager", endpoint_url=w.moto.endpoint),
    )

    def naive_op() -> None:
        creds = Credentials.from_secret_string(aws.get_secret_string(w.arn))
        if w.engine_name == "postgres":
            conn: Any = psycopg.connect(
                host=creds.host,
                port=creds.port,
                user=creds.username,
                password=creds.password,
                dbname="postgres",
                sslmode="verify-full",
                sslrootcert=w.ca,
            )
        else:
            conn = pymysql.connect(
                host=creds.host,
                port=creds.port,
                user=creds.username,
                password=creds.password,
                ssl=ssl.create_default_context(cafile=w.ca),
            )
        query(conn)

    stop = threading.Event()
    ours, naive = hammer(keyturn_op, stop), hammer(naive_op, stop)
    try:
        w.rotate()
    finally:
        finish(ours, stop)
        finish(naive, stop)
    w.watch_versions()
    stats = connector.stats
    BASELINE.append(
        f"{server_name} {strategy}: client_lib {ours.operations} ok / {len(ours.failures)} failed "
        f"(refused logins {stats.refused_logins}, recovered {stats.recovered}, fallbacks "
        f"{stats.fallbacks}); naive baseline {naive.operations} ok / {len(naive.failures)} failed"
    )
    assert ours.failures == []
    assert ours.operations >= 50


@pytest.mark.parametrize("server_name", ["postgres", "mariadb"])
def test_no_failed_operation_with_aws_secretsmanager_caching(
    server_name: str, world: Callable[[str, str, str], World]
) -> None:
    """The application's own aws-secretsmanager-caching cache as the source: a refused login
    makes it refresh at once (its refresh_secret_now), so single-user rotations cost nothing."""
    w = world(server_name, SINGLE_USER, f"awsc_{server_name[:2]}")
    aws = AwsSecretCache(
        config=SecretCacheConfig(),
        client=boto3.client("secretsmanager", endpoint_url=w.moto.endpoint),
    )
    connector = connector_for(w, SecretCache(AwsCachingSource(aws), ttl=300))

    def op() -> None:
        query(connector.connect())

    stop = threading.Event()
    load = hammer(op, stop)
    try:
        w.rotate(5)
    finally:
        finish(load, stop)
    w.watch_versions()
    BASELINE.append(
        f"{server_name} single_user aws-secretsmanager-caching source: {load.operations} ok / "
        f"{len(load.failures)} failed (recovered {connector.stats.recovered})"
    )
    assert load.failures == []
    assert load.operations >= 20


POOLED = [
    ("postgres", "psycopg_pool"),
    ("postgres", "sqlalchemy"),
    ("mariadb", "sqlalchemy"),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("server_name", "pool_kind"), POOLED)
def test_pooled_connections_never_fail_across_ten_rotations(
    server_name: str, pool_kind: str, strategy: str, world: Callable[[str, str, str], World]
) -> None:
    from sqlalchemy import text

    w = world(server_name, strategy, f"pool_{server_name[:2]}")
    closers: list[Callable[[], None]] = []
    op: Callable[[], None]
    connector: Any
    if pool_kind == "psycopg_pool":
        # The pool's own conninfo and kwargs reach every connection; TLS from the secret still
        # applies. A short max_lifetime makes it open connections all through the rotations.
        pool, connector = psycopg_pool(
            w.cache,
            w.arn,
            f"sslrootcert={w.ca} connect_timeout=5",
            kwargs={"autocommit": True, "prepare_threshold": None},
            min_size=2,
            max_size=THREADS,
            max_lifetime=1.0,
        )
        pool.open(wait=True)
        closers.append(pool.close)

        def op() -> None:
            with pool.connection() as conn:
                assert conn.autocommit
                assert conn.prepare_threshold is None
                conn.execute("SELECT 1").fetchone()
    else:
        if server_name == "postgres":
            connector = psycopg_connector(w.cache, w.arn)
            url = f"postgresql+psycopg://{w.server.admin.host}:{w.server.port}/postgres"
            args: dict[str, Any] = {"sslrootcert": w.ca, "connect_timeout": 5}
        else:
            connector = pymysql_connector(w.cache, w.arn)
            url = "mysql+pymysql://"
            args = {"ssl_ca": w.ca, "connect_timeout": 5}
        sa_engine = sqlalchemy_engine(
            connector, url, connect_args=args, pool_size=THREADS, pool_recycle=1
        )
        closers.append(sa_engine.dispose)

        def op() -> None:
            with sa_engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()

    stop = threading.Event()
    load = hammer(op, stop)
    try:
        w.rotate()
    finally:
        finish(load, stop)
        for close in closers:
            close()
    w.watch_versions()
    BASELINE.append(
        f"{server_name} {strategy} {pool_kind}: {load.operations} ok / {len(load.failures)} "
        f"failed (connects {connector.stats.connects}, recovered {connector.stats.recovered}, "
        f"rotations seen {connector.stats.rotations_detected})"
    )
    assert load.failures == []
    assert load.operations >= 50


@pytest.mark.parametrize("kind", ["async-connect", "async-pool", "async-sqlalchemy"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_async_psycopg_never_fails_across_ten_rotations(
    strategy: str, kind: str, world: Callable[[str, str, str], World]
) -> None:
    from sqlalchemy import text

    w = world("postgres", strategy, "async_pg")
    load = Load()

    async def run() -> None:
        pool: Any = None
        engine: Any = None
        if kind == "async-pool":
            pool, connector = await psycopg_async_pool(
                w.cache,
                w.arn,
                kwargs={"sslrootcert": w.ca, "connect_timeout": 5, "autocommit": True},
                min_size=2,
                max_size=THREADS,
                max_lifetime=1.0,
            )
            await pool.open(wait=True)
        else:
            connector = psycopg_async_connector(w.cache, w.arn, sslrootcert=w.ca)
            if kind == "async-sqlalchemy":
                engine = sqlalchemy_async_engine(
                    connector,
                    f"postgresql+psycopg://{w.server.admin.host}:{w.server.port}/postgres",
                    connect_args={"connect_timeout": 5},
                    pool_size=THREADS,
                    pool_recycle=1,
                )
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    if pool is not None:
                        async with pool.connection() as conn:
                            await (await conn.execute("SELECT 1")).fetchone()
                    elif engine is not None:
                        async with engine.connect() as sa_conn:
                            (await sa_conn.execute(text("SELECT 1"))).scalar_one()
                    else:
                        conn = await connector.connect()
                        try:
                            await (await conn.execute("SELECT 1")).fetchone()
                        finally:
                            await conn.close()
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    load.failures.append(f"{type(exc).__name__}: {exc}")
                else:
                    load.operations += 1

        tasks = [asyncio.create_task(worker()) for _ in range(THREADS)]
        try:
            await asyncio.to_thread(w.rotate)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if pool is not None:
                await pool.close()
            if engine is not None:
                await engine.dispose()
        BASELINE.append(
            f"postgres {strategy} {kind}: {load.operations} ok / {len(load.failures)} failed "
            f"(recovered {connector.stats.recovered}, "
            f"rotations seen {connector.stats.rotations_detected})"
        )

    asyncio.run(run())
    w.watch_versions()
    assert load.failures == []
    assert load.operations >= 20  # async connects over TLS are slower: fewer, still real


LOCKOUT_AFTER = 3  # MariaDB max_password_errors, as MySQL 8's FAILED_LOGIN_ATTEMPTS 3


def test_alternating_users_never_lock_an_account_with_a_lockout_policy(
    world: Callable[[str, str, str], World], mariadb_server: MariaDBServer
) -> None:
    """Rotations spaced as in production (longer apart than the cache's TTL) with MariaDB's
    max_password_errors = 3 and 8 threads connecting: with alternating users the password of
    the user in use never changes, so no login is refused and nothing is locked. Single user,
    measured in the same run (reported, not asserted: its logins in flight when the password
    changes are refused, and as many in a row can lock the account; preflight warns)."""
    figures: dict[str, tuple[int, int, int]] = {}
    with max_password_errors(mariadb_server, LOCKOUT_AFTER):
        for strategy in (ALTERNATING_USERS, SINGLE_USER):
            w = world("mariadb", strategy, f"lockout_{strategy[:3]}")
            cache = SecretCache(
                boto3.client("secretsmanager", endpoint_url=w.moto.endpoint), ttl=1.0
            )
            connector = connector_for(w, cache)

            def op(connector: RotationAwareConnector[Any] = connector) -> None:
                query(connector.connect())

            stop = threading.Event()
            load = hammer(op, stop)
            rotations = 0
            try:
                for _ in range(3):
                    time.sleep(2.0)  # the cache refreshes between rotations, as in production
                    w.rotate(1)
                    rotations += 1
                time.sleep(2.0)
            except RotationFailed:
                if strategy == ALTERNATING_USERS:
                    raise
            finally:
                finish(load, stop)
            w.watch_versions()
            current = json.loads(w.client.get_secret_value(SecretId=w.arn)["SecretString"])
            blocked = plain_login(mariadb_server, current["username"], current["password"])
            figures[strategy] = (
                load.operations,
                len(load.failures),
                connector.stats.refused_logins,
            )
            BASELINE.append(
                f"mariadb max_password_errors={LOCKOUT_AFTER}, {strategy}, {rotations} of 3 "
                "rotations 2 s apart done: "
                f"{load.operations} ok / {len(load.failures)} failed, "
                f"{connector.stats.refused_logins} refused logins, account "
                f"{'blocked' if blocked == 4150 else 'not blocked'}"
            )
            if strategy == ALTERNATING_USERS:
                assert rotations == 3
                assert load.failures == []
                assert connector.stats.refused_logins == 0
                assert blocked == 0
    assert figures[ALTERNATING_USERS][0] >= 50
