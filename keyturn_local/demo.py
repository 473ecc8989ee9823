"""``keyturn demo``: the four rotation functions, and an application under load, on this machine.

Starts PostgreSQL and MariaDB (TLS with a throwaway CA) and the moto server on free loopback
ports. For each engine it creates a single-user secret and an alternating-users secret (with its
superuser secret), then:

- an application built on client_lib keeps opening connections and running a query on every
  secret, from several threads;
- meanwhile each of the four rotation functions' handlers rotates its secret several times,
  through the local driver, printing each rotation's step durations;
- at the end, a summary: rotations, step durations, the application's operations and failures,
  and a check that AWSCURRENT logs in and the replaced single-user password no longer does.

Everything stops at exit, on failure and on SIGTERM too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from client_lib import SecretCache, psycopg_connector, pymysql_connector
from keyturn_cli.aws import AwsOptions
from keyturn_cli.output import table
from keyturn_core.protocol import function_name
from keyturn_local.driver import RotationFailed, StepRecord, register_stand_in_function, rotate
from rotation_lambdas.handlers import ALTERNATING_USERS, HANDLERS, SINGLE_USER, make_adapter
from rotation_lambdas.secret import DatabaseSecret, EngineFamily
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings

from .servers import MariaDBServer, MotoServer, PostgresServer, sigterm_as_exit
from .users import create_admin_user, create_app_user

Server = PostgresServer | MariaDBServer
LABELS = {"postgres": "PostgreSQL", "mariadb": "MariaDB"}


@dataclass
class Subject:
    """One secret, the function that rotates it, and what happened to both."""

    function: str
    engine: str
    server: Server
    arn: str
    initial: dict[str, Any]
    durations: dict[str, list[float]] = field(default_factory=dict)
    rotations_ok: int = 0
    rotations_failed: int = 0
    operations: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_step(self, record: StepRecord) -> None:
        self.durations.setdefault(record.step.value, []).append(record.seconds * 1000)


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _secret_for(server: Server, engine: str, username: str, password: str) -> dict[str, Any]:
    return {
        "engine": engine,
        "host": server.admin.host,
        "port": server.port,
        "username": username,
        "password": password,
        "sslmode": "verify-full",
    }


def make_subjects(client: Any, engine: str, server: Server) -> list[Subject]:
    """A single-user and an alternating-users secret on ``server``."""
    single = _secret_for(server, engine, "keyturn_app", secrets.token_urlsafe(24))
    create_app_user(server, engine, single["username"], single["password"])
    admin = _secret_for(server, engine, "keyturn_admin", secrets.token_urlsafe(24))
    create_admin_user(server, admin["username"], admin["password"], drop=["keyturn_alt_clone"])
    alternating = _secret_for(server, engine, "keyturn_alt", secrets.token_urlsafe(24))
    create_app_user(
        server,
        engine,
        alternating["username"],
        alternating["password"],
        administered_by=admin["username"],
    )
    admin_arn = client.create_secret(
        Name=f"keyturn/demo/{engine}/admin", SecretString=json.dumps(admin)
    )["ARN"]
    alternating["masterarn"] = admin_arn
    subjects = []
    for strategy, data in ((SINGLE_USER, single), (ALTERNATING_USERS, alternating)):
        arn = client.create_secret(
            Name=f"keyturn/demo/{engine}/{strategy}", SecretString=json.dumps(data)
        )["ARN"]
        family = EngineFamily.POSTGRESQL if engine == "postgres" else EngineFamily.MYSQL
        subjects.append(Subject(function_name(family, strategy), engine, server, arn, data))
    return subjects


def query_and_close(conn: Any) -> None:
    """The application's unit of work: one query on a fresh connection (DB-API, either driver)."""
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1")
            cur.fetchone()
    finally:
        conn.close()


def application(subject: Subject, cache: SecretCache, ca: str, stop: threading.Event) -> None:
    """One application thread: connect, query, close, again, counting every failure."""
    # TLS as the secret says (it says nothing: verify-full), against the local servers' CA.
    if subject.engine == "postgres":
        connector: Any = psycopg_connector(cache, subject.arn, sslrootcert=ca)
    else:
        connector = pymysql_connector(cache, subject.arn, ssl_ca=ca)
    while not stop.is_set():
        try:
            query_and_close(connector.connect())
        except Exception as exc:  # noqa: BLE001 - the demo counts every failure
            with subject.lock:
                subject.failures.append(type(exc).__name__)
        else:
            with subject.lock:
                subject.operations += 1


def rotate_subject(client: Any, subject: Subject, stand_in: str, number: int, total: int) -> None:
    started = time.monotonic()
    try:
        rotate(
            client,
            subject.arn,
            HANDLERS[subject.function],
            lambda_arn=stand_in,
            on_step=subject.record_step,
        )
    except RotationFailed as exc:
        subject.rotations_failed += 1
        print(f"  {subject.function:<26} rotation {number}/{total}  FAILED: {exc}", flush=True)
        return
    subject.rotations_ok += 1
    steps = "  ".join(
        f"{name.removesuffix('Secret')} {values[-1]:5.0f} ms"
        for name, values in subject.durations.items()
    )
    print(
        f"  {subject.function:<26} rotation {number}/{total}  "
        f"{(time.monotonic() - started) * 1000:5.0f} ms  ({steps})",
        flush=True,
    )


def final_checks(client: Any, subject: Subject) -> list[str]:
    """AWSCURRENT logs in; a single-user secret's first password no longer does."""
    problems = []
    text = client.get_secret_value(SecretId=subject.arn, VersionStage="AWSCURRENT")["SecretString"]
    current = DatabaseSecret.parse(text, label="AWSCURRENT")
    adapter: Any = make_adapter(current.family, ConnectSettings.from_env())
    conn = adapter.try_connect(current)
    if conn is None:
        problems.append(f"{subject.function}: AWSCURRENT does not log in")
    else:
        adapter.close(conn)
    if subject.function.endswith(SINGLE_USER) and subject.rotations_ok:
        first = DatabaseSecret.parse(json.dumps(subject.initial), label="first")
        conn = adapter.try_connect(first)
        if conn is not None:
            adapter.close(conn)
            problems.append(f"{subject.function}: the replaced password still logs in")
    return problems


def summary(subjects: list[Subject]) -> str:
    rows = []
    for s in subjects:
        steps = " / ".join(
            f"{statistics.mean(s.durations.get(step, [0])):.0f}"
            for step in ("createSecret", "setSecret", "testSecret", "finishSecret")
        )
        rows.append(
            [
                s.function,
                f"{s.rotations_ok} ok, {s.rotations_failed} failed",
                steps,
                str(s.operations),
                str(len(s.failures)),
            ]
        )
    headers = ["function", "rotations", "mean ms create/set/test/finish", "app ops", "failed"]
    return table(headers, rows)


def run_demo(
    engines: list[str] | None = None,
    *,
    rotations: int = 3,
    short: bool = False,
    verbose: bool = False,
) -> int:
    """Run the demo; 0 when every rotation succeeded, no application operation failed, and
    the final checks held. ``short`` (for CI): 2 rotations per function, 1 application thread
    per secret."""
    engines = engines or ["postgres", "mariadb"]
    rotations = 2 if short else max(1, rotations)
    threads_per_secret = 1 if short else 2
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")
    if not verbose:
        os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")
    started = time.monotonic()
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_exit())
        print("starting the moto server, " + " and ".join(LABELS[e] for e in engines) + " ...")
        moto = stack.enter_context(MotoServer())
        servers: dict[str, Server] = {}
        if "postgres" in engines:
            servers["postgres"] = stack.enter_context(PostgresServer())
        if "mariadb" in engines:
            servers["mariadb"] = stack.enter_context(MariaDBServer())
        ca_path = _ca_bundle(servers, moto.base / "ca-bundle.pem")
        stack.enter_context(
            _environment(
                AWS_ACCESS_KEY_ID="demo",
                AWS_SECRET_ACCESS_KEY="demo",  # noqa: S106 - moto
                **{ENV_TLS_CA_BUNDLE: ca_path},
            )
        )
        AwsOptions(moto.endpoint, "us-east-1").export()
        client = boto3.client("secretsmanager")
        stand_in = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        subjects = [s for e, server in servers.items() for s in make_subjects(client, e, server)]
        for s in subjects:
            print(f"  {s.function:<26} {s.arn}")
        cache = SecretCache(boto3.client("secretsmanager"), ttl=300)
        stop = threading.Event()
        workers = [
            threading.Thread(target=application, args=(s, cache, ca_path, stop), daemon=True)
            for s in subjects
            for _ in range(threads_per_secret)
        ]
        print(
            f"\napplication: {len(workers)} threads (client_lib connectors) query every secret; "
            f"rotating each secret {rotations} times ..."
        )
        for worker in workers:
            worker.start()
        try:
            time.sleep(0.3)  # the application is running before the first rotation
            for number in range(1, rotations + 1):
                for subject in subjects:
                    rotate_subject(client, subject, stand_in, number, rotations)
            time.sleep(0.3)
        finally:
            stop.set()
            for worker in workers:
                worker.join(30)
        problems = [p for s in subjects for p in final_checks(client, s)]
    print("\n" + summary(subjects))
    for problem in problems:
        print(f"FAILED CHECK: {problem}")
    failures = sum(len(s.failures) for s in subjects)
    failed_rotations = sum(s.rotations_failed for s in subjects)
    ok = not problems and not failures and not failed_rotations
    total = sum(s.rotations_ok for s in subjects)
    operations = sum(s.operations for s in subjects)
    print(
        f"\n{total} rotations, {failed_rotations} failed; {operations} application operations, "
        f"{failures} failed; servers stopped; {time.monotonic() - started:.1f} s in all"
    )
    print("demo OK" if ok else "demo FAILED")
    return 0 if ok else 1


def _ca_bundle(servers: dict[str, Server], path: Path) -> str:
    """One CA bundle file trusting every local server (each has its own throwaway CA)."""
    cas = [s.tls_files.ca_cert for s in servers.values() if s.tls_files is not None]
    path.write_bytes(b"".join(ca.read_bytes() for ca in cas))
    return str(path)
