"""Secrets Manager calls and connect latency of client_lib, steady and across rotations.

    .venv/bin/python bench/rotation_client.py

Starts PostgreSQL (TLS) and the moto server on loopback, then measures, in one run:
1. steady state: 32 threads read one secret through SecretCache for 6 TTLs; Secrets Manager
   calls per TTL (target: at most one refresh per TTL);
2. rotations: 8 threads connect through the rotation-aware connector while the single-user
   rotation function rotates the secret 10 times; extra Secrets Manager calls per rotation
   (target: at most two: a DescribeSecret and the new version's GetSecretValue);
3. connect latency p50/p99 during those rotations, against the anchor: the same connects with
   no rotation, measured just before.
"""

from __future__ import annotations

import json
import statistics
import threading
import time
from typing import Any

import boto3

from client_lib import SecretCache, psycopg_connector
from keyturn_local.driver import register_stand_in_function, rotate
from keyturn_local.servers import MotoServer, PostgresServer
from keyturn_local.users import create_app_user
from rotation_lambdas.handlers import SINGLE_USER, build_engine
from rotation_lambdas.secret import EngineFamily
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE

TTL = 2.0
STEADY_TTLS = 6


class CountingClient:
    """A boto3 client wrapper counting DescribeSecret and GetSecretValue calls."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls = 0
        self.lock = threading.Lock()

    def _count(self) -> None:
        with self.lock:
            self.calls += 1

    def describe_secret(self, **kwargs: Any) -> Any:
        self._count()
        return self.client.describe_secret(**kwargs)

    def get_secret_value(self, **kwargs: Any) -> Any:
        self._count()
        return self.client.get_secret_value(**kwargs)


def moto_client(moto: MotoServer, service: str) -> Any:
    factory: Any = boto3.client  # typed per service name; ours is a variable
    return factory(
        service,
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="bench",
        aws_secret_access_key="bench",  # noqa: S106 - moto
    )


def run_threads(n: int, seconds: float, op: Any) -> list[float]:
    """Run ``op`` in ``n`` threads for ``seconds``; return each call's latency in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def worker() -> None:
        mine = []
        while time.monotonic() < stop:
            start = time.perf_counter()
            op()
            mine.append((time.perf_counter() - start) * 1000)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def main() -> None:
    with MotoServer() as moto, PostgresServer() as pg:
        assert pg.tls_files is not None
        ca = str(pg.tls_files.ca_cert)
        sm = moto_client(moto, "secretsmanager")
        create_app_user(pg, "postgres", "bench_app", "initial-Password-1")
        secret = {
            "engine": "postgres",
            "host": pg.admin.host,
            "port": pg.port,
            "username": "bench_app",
            "password": "initial-Password-1",
        }
        arn = sm.create_secret(Name="bench/db", SecretString=json.dumps(secret))["ARN"]

        counting = CountingClient(sm)
        cache = SecretCache(counting, ttl=TTL)
        cache.get(arn)
        before = counting.calls
        run_threads(32, STEADY_TTLS * TTL, lambda: cache.get(arn))
        steady = (counting.calls - before) / STEADY_TTLS
        print(
            f"steady state, 32 threads, ttl {TTL:g} s: {steady:.2f} calls per TTL "
            f"(target <= 1 refresh per TTL; a refresh is 1 DescribeSecret, +1 GetSecretValue "
            f"only for a new version)"
        )

        connector = psycopg_connector(cache, arn, sslmode="verify-full", sslrootcert=ca)

        def op() -> None:
            connector.connect().close()

        anchor = run_threads(8, 3.0, op)
        engine = build_engine(
            EngineFamily.POSTGRESQL, SINGLE_USER, client=sm, env={ENV_TLS_CA_BUNDLE: ca}
        )
        lam = moto_client(moto, "lambda")
        iam = moto_client(moto, "iam")
        stand_in = register_stand_in_function(lam, iam)
        rotations = 10
        latencies: list[float] = []
        done = threading.Event()

        def rotator() -> None:
            for _ in range(rotations):
                rotate(sm, arn, engine, lambda_arn=stand_in, max_attempts=1)
            done.set()

        calls_before, started = counting.calls, time.monotonic()
        rotating = threading.Thread(target=rotator)
        rotating.start()
        while not done.is_set():
            latencies += run_threads(8, 0.5, op)
        rotating.join()
        elapsed = time.monotonic() - started
        background = elapsed / TTL  # the refreshes steady state would have cost anyway
        extra = (counting.calls - calls_before - background) / rotations
        print(
            f"rotations: {rotations} in {elapsed:.1f} s, {len(latencies)} connects, "
            f"{connector.stats.recovered} recovered, fallbacks {connector.stats.fallbacks}"
        )
        print(
            f"extra Secrets Manager calls per rotation: {extra:.1f} (target <= 2; "
            f"{counting.calls - calls_before} calls in all, {background:.1f} of them the "
            f"periodic refresh)"
        )
        print(
            f"connect latency, no rotation (anchor): p50 {pct(anchor, 50):6.1f} ms  "
            f"p99 {pct(anchor, 99):6.1f} ms  ({len(anchor)} connects)"
        )
        print(
            f"connect latency, across rotations:      p50 {pct(latencies, 50):6.1f} ms  "
            f"p99 {pct(latencies, 99):6.1f} ms  "
            f"(p50 x{pct(latencies, 50) / pct(anchor, 50):.2f}, "
            f"p99 x{pct(latencies, 99) / pct(anchor, 99):.2f})"
        )


if __name__ == "__main__":
    main()
