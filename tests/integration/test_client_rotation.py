"""Zero failed operations across rotations: 8 threads connect and query while secrets rotate.

For each engine and strategy, the rotation functions rotate the secret while 8 threads keep opening
connections through client_lib and running a query: 3 rotations per case, 10 in one soak per
kind. Each rotation waits until every thread has completed an operation since the last one (an
event, not a fixed pause), so every rotation is seen by every thread. Every operation must succeed:
with plain connectors (also against a PostgreSQL server answering in German), with the secrets
read through aws-secretsmanager-caching, with psycopg_pool given its own ``conninfo`` and
``kwargs``, with SQLAlchemy engines given a URL and ``connect_args``, and with asyncio. The same
harness with a naive client (aws-secretsmanager-caching + a plain connect) counts the operations
it would have failed: reported in the test summary, not asserted.
"""

from __future__ import annotations

import asyncio
import inspect
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

from .conftest import POSTGRES_SERVERS, family_of

pytestmark = pytest.mark.integration
THREADS = 8
ROTATIONS = 3  # per case; SOAK for one case of each kind
SOAK = 10
# The most a rotation waits for every thread to complete an operation after the last one. In
# production rotations are hours apart; here a connect() must not be overtaken by several
# rotations (each would cost it a refused login, and it gives up after
# FallbackPolicy.max_failed_logins of them to protect lockout policies).
SETTLE_TIMEOUT = 15.0
STRATEGIES = [SINGLE_USER, ALTERNATING_USERS]
# "postgres-de": PostgreSQL answering in German (lc_messages = de_DE.UTF-8); postgres16...: the
# versions scripts/bootstrap adds to Debian's 15.
SERVERS = ["postgres", "postgres-de", *POSTGRES_SERVERS[1:], "mariadb"]


@dataclass
class Load:
    operations: int = 0
    failures: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    threads: list[threading.Thread] = field(default_factory=list)
    done: list[int] = field(default_factory=lambda: [0] * THREADS)  # operations per worker
    rotations: int = 0
    # connect() calls in flight, by the number of rotations done when each began
    inflight: dict[int, int] = field(default_factory=dict)

    def track(self, connector: Any) -> None:
        """Count ``connector``'s connect() calls in flight (pools call it from their threads)."""
        real = connector.connect

        def begin() -> int:
            with self.changed:
                epoch = self.rotations
                self.inflight[epoch] = self.inflight.get(epoch, 0) + 1
                return epoch

        def end(epoch: int) -> None:
            with self.changed:
                self.inflight[epoch] -= 1
                self.changed.notify_all()

        if inspect.iscoroutinefunction(real):

            async def connect_async(*args: Any, **kwargs: Any) -> Any:
                epoch = begin()
                try:
                    return await real(*args, **kwargs)
                finally:
                    end(epoch)

            connector.connect = connect_async
        else:

            def connect(*args: Any, **kwargs: Any) -> Any:
                epoch = begin()
                try:
                    return real(*args, **kwargs)
                finally:
                    end(epoch)

            connector.connect = connect

    def rotated(self) -> None:
        with self.changed:
            self.rotations += 1

    def overtaken(self) -> bool:
        """Whether a connect() begun before the last rotation is still running (the next
        rotation would overtake it a second time)."""
        with self.changed:
            return self.changed.wait_for(
                lambda: not any(n for e, n in self.inflight.items() if e < self.rotations),
                SETTLE_TIMEOUT,
            )

    def record(self, worker: int, failure: str | None = None) -> None:
        with self.changed:
            if failure is None:
                self.operations += 1
                self.done[worker] += 1
            else:
                self.failures.append(failure)
            self.changed.notify_all()

    def settled(self, since: list[int]) -> bool:
        """Wait until every worker has completed an operation after ``since`` (a snapshot of
        ``done``), or one failed; False if that did not happen within SETTLE_TIMEOUT."""
        with self.changed:
            return self.changed.wait_for(
                lambda: (
                    bool(self.failures) or all(n > m for n, m in zip(self.done, since, strict=True))
                ),
                SETTLE_TIMEOUT,
            )


def hammer(
    open_and_query: Callable[[], None], stop: threading.Event, connector: Any = None
) -> Load:
    load = Load()
    if connector is not None:
        load.track(connector)

    def worker(index: int) -> None:
        while not stop.is_set():
            try:
                open_and_query()
            except Exception as exc:  # noqa: BLE001 - every failure is counted
                load.record(index, f"{type(exc).__name__}: {exc}")
            else:
                load.record(index)

    load.threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
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

    def rotate(self, times: int = ROTATIONS, load: Load | None = None) -> None:
        """Rotate ``times`` times; with ``load``, first and after each rotation wait until every
        worker has completed an operation (so each has seen the rotation) and every connect()
        begun before the rotation has returned (so none is overtaken by two rotations, which
        production's hours between rotations never do)."""
        for _ in range(times):
            if load is not None:
                assert load.settled(list(load.done)), "a worker made no progress"
                assert load.overtaken(), "a connect() did not return"
            rotate(self.client, self.arn, self.engine, lambda_arn=self.stand_in, max_attempts=1)
            if load is not None:
                load.rotated()
        if load is not None:
            assert load.settled(list(load.done)), "a worker made no progress"
            assert load.overtaken(), "a connect() did not return"

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
        fixture = {"postgres-de": "postgres_server_de"}.get(server_name, f"{server_name}_server")
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
def test_no_failed_operation_across_rotations(
    server_name: str,
    strategy: str,
    world: Callable[[str, str, str], World],
    figures: Callable[[str, str], None],
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
    # The naive client runs beside ours in the soak of each engine only: its figures are
    # reported, and elsewhere it would only take the CPU from ours.
    soak = (server_name, strategy) in (("mariadb", SINGLE_USER), ("postgres", SINGLE_USER))
    ours = hammer(keyturn_op, stop, connector)
    naive = hammer(naive_op, stop) if soak else Load()
    try:
        w.rotate(SOAK if soak else ROTATIONS, ours)
    finally:
        finish(ours, stop)
        finish(naive, stop)
    w.watch_versions()
    stats = connector.stats
    figures(
        "operations",
        f"{server_name} {strategy}: client_lib {ours.operations} ok / {len(ours.failures)} failed "
        f"(refused logins {stats.refused_logins}, recovered {stats.recovered}, fallbacks "
        f"{stats.fallbacks})"
        + (
            f"; naive baseline {naive.operations} ok / {len(naive.failures)} failed" if soak else ""
        ),
    )
    assert ours.failures == []


def test_no_failed_operation_with_aws_secretsmanager_caching(
    world: Callable[[str, str, str], World],
    figures: Callable[[str, str], None],
) -> None:
    """The application's own aws-secretsmanager-caching cache as the source: a refused login
    makes it refresh at once (its refresh_secret_now), so single-user rotations cost nothing.
    (Its refresh sleeps in the caller's thread, seconds each: one engine only.)"""
    server_name = "mariadb"
    w = world(server_name, SINGLE_USER, f"awsc_{server_name[:2]}")
    aws = AwsSecretCache(
        config=SecretCacheConfig(),
        client=boto3.client("secretsmanager", endpoint_url=w.moto.endpoint),
    )
    connector = connector_for(w, SecretCache(AwsCachingSource(aws), ttl=300))

    def op() -> None:
        query(connector.connect())

    stop = threading.Event()
    load = hammer(op, stop, connector)
    try:
        w.rotate(ROTATIONS, load)
    finally:
        finish(load, stop)
    w.watch_versions()
    figures(
        "operations",
        f"{server_name} single_user aws-secretsmanager-caching source: {load.operations} ok / "
        f"{len(load.failures)} failed (recovered {connector.stats.recovered})",
    )
    assert load.failures == []


POOLED = [
    ("postgres", "psycopg_pool"),
    ("postgres", "sqlalchemy"),
    ("mariadb", "sqlalchemy"),
]


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize(("server_name", "pool_kind"), POOLED)
def test_pooled_connections_never_fail_across_rotations(
    server_name: str,
    pool_kind: str,
    strategy: str,
    world: Callable[[str, str, str], World],
    figures: Callable[[str, str], None],
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
    load = hammer(op, stop, connector)
    soak = (server_name, pool_kind, strategy) == ("postgres", "psycopg_pool", SINGLE_USER)
    try:
        w.rotate(SOAK if soak else ROTATIONS, load)
    finally:
        finish(load, stop)
        for close in closers:
            close()
    w.watch_versions()
    figures(
        "operations",
        f"{server_name} {strategy} {pool_kind}: {load.operations} ok / {len(load.failures)} "
        f"failed (connects {connector.stats.connects}, recovered {connector.stats.recovered}, "
        f"rotations seen {connector.stats.rotations_detected})",
    )
    assert load.failures == []


@pytest.mark.parametrize("kind", ["async-connect", "async-pool", "async-sqlalchemy"])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_async_psycopg_never_fails_across_rotations(
    strategy: str,
    kind: str,
    world: Callable[[str, str, str], World],
    figures: Callable[[str, str], None],
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
        load.track(connector)
        stop = asyncio.Event()

        async def worker(index: int) -> None:
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
                    load.record(index, f"{type(exc).__name__}: {exc}")
                else:
                    load.record(index)

        tasks = [asyncio.create_task(worker(i)) for i in range(THREADS)]
        soak = (kind, strategy) == ("async-pool", SINGLE_USER)
        try:
            await asyncio.to_thread(w.rotate, SOAK if soak else ROTATIONS, load)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
            if pool is not None:
                await pool.close()
            if engine is not None:
                await engine.dispose()
        figures(
            "operations",
            f"postgres {strategy} {kind}: {load.operations} ok / {len(load.failures)} failed "
            f"(recovered {connector.stats.recovered}, "
            f"rotations seen {connector.stats.rotations_detected})",
        )

    asyncio.run(run())
    w.watch_versions()
    assert load.failures == []


LOCKOUT_AFTER = 3  # MariaDB max_password_errors, as MySQL 8's FAILED_LOGIN_ATTEMPTS 3


def test_alternating_users_never_lock_an_account_with_a_lockout_policy(
    world: Callable[[str, str, str], World],
    mariadb_server: MariaDBServer,
    figures: Callable[[str, str], None],
) -> None:
    """Rotations spaced as in production (longer apart than the cache's TTL: each waits until
    the cache has refreshed since the last) with MariaDB's max_password_errors = 3 and 8 threads
    connecting: with alternating users the password of the user in use never changes, so no
    login is refused and nothing is locked. Single user, measured in the same run (reported, not
    asserted: its logins in flight when the password changes are refused, and as many in a row
    can lock the account; preflight warns)."""
    with max_password_errors(mariadb_server, LOCKOUT_AFTER):
        for strategy in (ALTERNATING_USERS, SINGLE_USER):
            w = world("mariadb", strategy, f"lockout_{strategy[:3]}")
            cache = SecretCache(
                boto3.client("secretsmanager", endpoint_url=w.moto.endpoint), ttl=CACHE_TTL
            )
            connector = connector_for(w, cache)

            def op(connector: RotationAwareConnector[Any] = connector) -> None:
                query(connector.connect())

            def refreshed(cache: SecretCache = cache) -> Callable[[], bool]:
                since = cache.stats.refreshes
                return lambda: cache.stats.refreshes > since

            stop = threading.Event()
            load = hammer(op, stop)
            rotations = 0
            try:
                for _ in range(3):
                    wait_until(refreshed())  # the cache refreshes between rotations
                    w.rotate(1, load)
                    rotations += 1
                wait_until(refreshed())
            except RotationFailed:
                if strategy == ALTERNATING_USERS:
                    raise
            finally:
                finish(load, stop)
            w.watch_versions()
            current = json.loads(w.client.get_secret_value(SecretId=w.arn)["SecretString"])
            blocked = plain_login(mariadb_server, current["username"], current["password"])
            figures(
                "operations",
                f"mariadb max_password_errors={LOCKOUT_AFTER}, {strategy}, {rotations} of 3 "
                f"rotations, each after a cache refresh ({CACHE_TTL} s TTL): "
                f"{load.operations} ok / {len(load.failures)} failed, "
                f"{connector.stats.refused_logins} refused logins, account "
                f"{'blocked' if blocked == 4150 else 'not blocked'}",
            )
            if strategy == ALTERNATING_USERS:
                assert rotations == 3
                assert load.failures == []
                assert connector.stats.refused_logins == 0
                assert blocked == 0


CACHE_TTL = 0.5


def wait_until(condition: Callable[[], bool], timeout: float = SETTLE_TIMEOUT) -> None:
    """Poll ``condition`` (an event another thread causes) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the awaited event did not happen"
        time.sleep(0.02)
