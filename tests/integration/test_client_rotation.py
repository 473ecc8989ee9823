"""Zero failed operations across rotations: 8 threads connect and query while secrets rotate.

For each engine and strategy, the rotation functions rotate the secret 10 times while 8 threads
keep opening connections through client_lib and running a query. Every operation must succeed.
The same harness with a naive client (aws-secretsmanager-caching + a plain connect) counts the
operations it would have failed: reported in the test summary, not asserted.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
import psycopg
import pymysql
import pytest
from aws_secretsmanager_caching import SecretCache as AwsSecretCache
from aws_secretsmanager_caching import SecretCacheConfig

from client_lib import Credentials, SecretCache, psycopg_connector, pymysql_connector
from keyturn_local.demo import query_and_close as query
from keyturn_local.servers import MariaDBServer, MotoServer, PostgresServer
from rotation_lambdas.driver import register_stand_in_function, rotate
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE
from tests.support.db_setup import setup_secret
from tests.support.leaks import LeakWatch

from .conftest import ENGINES, family_of

pytestmark = pytest.mark.integration
THREADS = 8
ROTATIONS = 10
BASELINE: list[str] = []  # printed by tests/conftest.py's terminal summary


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
                    load.failures.append(type(exc).__name__)
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
class Prepared:
    client: Any
    arn: str
    ca: str
    engine: Any
    stand_in: str
    cache: SecretCache


def prepare(
    engine_name: str,
    strategy: str,
    alternating: bool,
    moto_server: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leaks: LeakWatch,
    name: str,
) -> Prepared:
    """A fresh moto server state, a user and its secret, the rotation engine, a client cache."""
    moto_server.reset()
    endpoint = moto_server.endpoint
    client = boto3.client("secretsmanager", endpoint_url=endpoint)
    arn, _ = setup_secret(
        engine_name, alternating, postgres_server, mariadb_server, client, leaks, name=name
    )
    server = postgres_server if engine_name == "postgres" else mariadb_server
    assert server.tls_files is not None
    ca = str(server.tls_files.ca_cert)
    engine = build_engine(
        family_of(engine_name), strategy, client=client, env={ENV_TLS_CA_BUNDLE: ca}
    )
    stand_in = register_stand_in_function(
        boto3.client("lambda", endpoint_url=endpoint), boto3.client("iam", endpoint_url=endpoint)
    )
    cache = SecretCache(boto3.client("secretsmanager", endpoint_url=endpoint), ttl=300)
    return Prepared(client, arn, ca, engine, stand_in, cache)


@pytest.mark.parametrize("strategy", [SINGLE_USER, ALTERNATING_USERS])
@pytest.mark.parametrize("engine_name", ENGINES)
def test_no_failed_operation_across_ten_rotations(
    engine_name: str,
    strategy: str,
    moto_server: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
) -> None:
    world = prepare(
        engine_name,
        strategy,
        strategy == ALTERNATING_USERS,
        moto_server,
        postgres_server,
        mariadb_server,
        leak_watch,
        f"load_{engine_name[:2]}",
    )
    client, arn, ca, engine, stand_in, cache = (
        world.client,
        world.arn,
        world.ca,
        world.engine,
        world.stand_in,
        world.cache,
    )
    if engine_name == "postgres":
        connector = psycopg_connector(
            cache, arn, sslmode="verify-full", sslrootcert=ca, connect_timeout=5
        )
    else:
        connector = pymysql_connector(
            cache, arn, ssl=ssl.create_default_context(cafile=ca), connect_timeout=5
        )

    def keyturn_op() -> None:
        query(connector.connect())

    aws = AwsSecretCache(
        config=SecretCacheConfig(),
        client=boto3.client("secretsmanager", endpoint_url=moto_server.endpoint),
    )

    def naive_op() -> None:
        creds = Credentials.from_secret_string(aws.get_secret_string(arn))
        if engine_name == "postgres":
            conn: Any = psycopg.connect(
                host=creds.host,
                port=creds.port,
                user=creds.username,
                password=creds.password,
                dbname="postgres",
                sslmode="verify-full",
                sslrootcert=ca,
            )
        else:
            conn = pymysql.connect(
                host=creds.host,
                port=creds.port,
                user=creds.username,
                password=creds.password,
                ssl=ssl.create_default_context(cafile=ca),
            )
        query(conn)

    stop = threading.Event()
    ours, naive = hammer(keyturn_op, stop), hammer(naive_op, stop)
    try:
        for _ in range(ROTATIONS):
            rotate(client, arn, engine, lambda_arn=stand_in, max_attempts=1)
    finally:
        finish(ours, stop)
        finish(naive, stop)
    for version in client.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        leak_watch.add_secret_string(
            client.get_secret_value(SecretId=arn, VersionId=version)["SecretString"]
        )
    BASELINE.append(
        f"{engine_name} {strategy}: client_lib {ours.operations} ok / {len(ours.failures)} failed "
        f"(recovered {connector.stats.recovered}, fallbacks {connector.stats.fallbacks}); "
        f"naive baseline {naive.operations} ok / {len(naive.failures)} failed"
    )
    assert ours.failures == []
    assert ours.operations >= 50


POOLED = [
    ("postgres", "psycopg_pool"),
    ("postgres", "sqlalchemy"),
    ("mariadb", "sqlalchemy"),
]


@pytest.mark.parametrize("strategy", [SINGLE_USER, ALTERNATING_USERS])
@pytest.mark.parametrize(("engine_name", "pool_kind"), POOLED)
def test_pooled_connections_never_fail_across_ten_rotations(
    engine_name: str,
    pool_kind: str,
    strategy: str,
    moto_server: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
) -> None:
    from sqlalchemy import text

    from client_lib import psycopg_pool, sqlalchemy_engine

    world = prepare(
        engine_name,
        strategy,
        strategy == ALTERNATING_USERS,
        moto_server,
        postgres_server,
        mariadb_server,
        leak_watch,
        f"pool_{engine_name[:2]}",
    )
    client, arn, ca, engine, stand_in, cache = (
        world.client,
        world.arn,
        world.ca,
        world.engine,
        world.stand_in,
        world.cache,
    )
    pg_tls: dict[str, Any] = {"sslmode": "verify-full", "sslrootcert": ca, "connect_timeout": 5}
    closers: list[Callable[[], None]] = []
    op: Callable[[], None]
    if pool_kind == "psycopg_pool":
        # A short max_lifetime makes the pool open new connections all through the rotations.
        pool, connector = psycopg_pool(
            cache,
            arn,
            connect_kwargs=pg_tls,
            min_size=2,
            max_size=THREADS,
            max_lifetime=1.0,
        )
        pool.open(wait=True)
        closers.append(pool.close)

        def op() -> None:
            with pool.connection() as conn:
                conn.execute("SELECT 1").fetchone()
    else:
        if engine_name == "postgres":
            connector = psycopg_connector(cache, arn, **pg_tls)
            url = "postgresql+psycopg://"
        else:
            connector = pymysql_connector(cache, arn, ssl=ssl.create_default_context(cafile=ca))
            url = "mysql+pymysql://"
        sa_engine = sqlalchemy_engine(connector, url, pool_size=THREADS, pool_recycle=1)
        closers.append(sa_engine.dispose)

        def op() -> None:
            with sa_engine.connect() as conn:
                conn.execute(text("SELECT 1")).scalar_one()

    stop = threading.Event()
    load = hammer(op, stop)
    try:
        for _ in range(ROTATIONS):
            rotate(client, arn, engine, lambda_arn=stand_in, max_attempts=1)
    finally:
        finish(load, stop)
        for close in closers:
            close()
    for version in client.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        leak_watch.add_secret_string(
            client.get_secret_value(SecretId=arn, VersionId=version)["SecretString"]
        )
    BASELINE.append(
        f"{engine_name} {strategy} {pool_kind}: {load.operations} ok / {len(load.failures)} "
        f"failed (connects {connector.stats.connects}, recovered {connector.stats.recovered}, "
        f"rotations seen {connector.stats.rotations_detected})"
    )
    assert load.failures == []
    assert load.operations >= 50


@pytest.mark.parametrize("pooled", [False, True], ids=["async-connect", "async-pool"])
@pytest.mark.parametrize("strategy", [SINGLE_USER, ALTERNATING_USERS])
def test_async_psycopg_never_fails_across_ten_rotations(
    strategy: str,
    pooled: bool,
    moto_server: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
) -> None:
    import asyncio

    from client_lib import psycopg_async_connector, psycopg_async_pool

    world = prepare(
        "postgres",
        strategy,
        strategy == ALTERNATING_USERS,
        moto_server,
        postgres_server,
        mariadb_server,
        leak_watch,
        "async_pg",
    )
    client, arn, ca, engine, stand_in, cache = (
        world.client,
        world.arn,
        world.ca,
        world.engine,
        world.stand_in,
        world.cache,
    )
    tls: dict[str, Any] = {"sslmode": "verify-full", "sslrootcert": ca, "connect_timeout": 5}
    load = Load()

    async def run() -> None:
        pool: Any = None
        if pooled:
            pool, connector = await psycopg_async_pool(
                cache, arn, connect_kwargs=tls, min_size=2, max_size=THREADS, max_lifetime=1.0
            )
            await pool.open(wait=True)
        else:
            connector = psycopg_async_connector(cache, arn, **tls)
        stop = asyncio.Event()

        async def worker() -> None:
            while not stop.is_set():
                try:
                    if pool is not None:
                        async with pool.connection() as conn:
                            await (await conn.execute("SELECT 1")).fetchone()
                    else:
                        conn = await connector.connect()
                        try:
                            await (await conn.execute("SELECT 1")).fetchone()
                        finally:
                            await conn.close()
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    load.failures.append(type(exc).__name__)
                else:
                    load.operations += 1

        tasks = [asyncio.create_task(worker()) for _ in range(THREADS)]
        try:
            for _ in range(ROTATIONS):
                await asyncio.to_thread(
                    rotate, client, arn, engine, lambda_arn=stand_in, max_attempts=1
                )
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if pool is not None:
                await pool.close()
        BASELINE.append(
            f"postgres {strategy} {'async pool' if pooled else 'async connect'}: "
            f"{load.operations} ok / {len(load.failures)} failed "
            f"(recovered {connector.stats.recovered}, "
            f"rotations seen {connector.stats.rotations_detected})"
        )

    asyncio.run(run())
    for version in client.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        leak_watch.add_secret_string(
            client.get_secret_value(SecretId=arn, VersionId=version)["SecretString"]
        )
    assert load.failures == []
    assert load.operations >= 20  # async connects over TLS are slower: fewer, still real
