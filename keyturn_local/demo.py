"""``keyturn demo``: a real single-user rotation of a PostgreSQL and a MariaDB password.

Starts PostgreSQL and MariaDB (TLS with a throwaway CA) and the moto server on free loopback ports,
creates an application user and its secret on each, rotates each secret through the real Lambda
handler, and shows that the old password is refused and the new one logs in. Everything stops at
exit, on failure too.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any

import boto3

from rotation_lambdas.driver import RotationFailed, register_stand_in_function, rotate
from rotation_lambdas.handlers import HANDLERS, make_adapter
from rotation_lambdas.secret import DatabaseSecret
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings

from .cli import print_step, print_versions, use_endpoint
from .servers import MariaDBServer, MotoServer, PostgresServer, sigterm_as_exit
from .users import create_app_user

APP_USER = "keyturn_app"


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


def _login_result(secret: DatabaseSecret, settings: ConnectSettings) -> str:
    adapter: Any = make_adapter(secret.family, settings)
    conn = adapter.try_connect(secret)
    if conn is None:
        return "refused by the server"
    adapter.close(conn)
    return "logs in"


def demo_engine(
    label: str, server: PostgresServer | MariaDBServer, engine: str, moto: MotoServer
) -> bool:
    """Rotate one engine's secret; print what happened; return whether every check held."""
    assert server.tls_files is not None
    print(f"\n== {label} on {server.admin.host}:{server.port} (TLS verify-full, test CA) ==")
    password = secrets.token_urlsafe(24)
    create_app_user(server, engine, APP_USER, password)
    secret = {
        "engine": engine,
        "host": server.admin.host,
        "port": server.port,
        "username": APP_USER,
        "password": password,
        "sslmode": "verify-full",
    }
    client = boto3.client("secretsmanager")
    name = f"keyturn/demo/{engine}"
    arn = client.create_secret(Name=name, SecretString=json.dumps(secret))["ARN"]
    print(f"  secret {arn}")
    function = "postgres_single_user" if engine == "postgres" else "mysql_single_user"
    stand_in = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
    started = time.monotonic()
    try:
        report = rotate(client, arn, HANDLERS[function], lambda_arn=stand_in, on_step=print_step)
    except RotationFailed as exc:
        print_versions("versions after the failed rotation", exc.report.after)
        print(f"  result: FAILED ({exc})")
        return False
    print(
        f"  rotated through rotation_lambdas.handlers.{function} in "
        f"{(time.monotonic() - started) * 1000:.0f} ms"
    )
    print_versions("versions before", report.before)
    print_versions("versions after", report.after)
    settings = ConnectSettings.from_env()
    old = DatabaseSecret.parse(json.dumps(secret), label="old")
    new = DatabaseSecret.parse(
        client.get_secret_value(SecretId=arn, VersionStage="AWSCURRENT")["SecretString"],
        label="AWSCURRENT",
    )
    old_result = _login_result(old, settings)
    new_result = _login_result(new, settings)
    print(f"  old password (now AWSPREVIOUS): {old_result}")
    print(f"  new password (AWSCURRENT):      {new_result}")
    ok = (
        old_result == "refused by the server"
        and new_result == "logs in"
        and "AWSCURRENT" in report.after.get(report.token, [])
    )
    print(f"  result: {'OK' if ok else 'FAILED'}")
    return ok


def run_demo(engines: list[str] | None = None, *, verbose: bool = False) -> int:
    """Run the demo; 0 when every engine rotated and every check held.

    ``verbose`` shows the rotation function's own structured (JSON) log lines.
    """
    engines = engines or ["postgres", "mariadb"]
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO" if verbose else "WARNING")
    started = time.monotonic()
    results: list[bool] = []
    with contextlib.ExitStack() as stack:
        stack.enter_context(sigterm_as_exit())
        print("starting moto server, " + " and ".join(engines) + " on 127.0.0.1 ...", flush=True)
        moto = stack.enter_context(MotoServer())
        servers: dict[str, PostgresServer | MariaDBServer] = {}
        if "postgres" in engines:
            servers["postgres"] = stack.enter_context(PostgresServer())
        if "mariadb" in engines:
            servers["mariadb"] = stack.enter_context(MariaDBServer())
        use_endpoint(moto.endpoint, None)
        for engine, server in servers.items():
            assert server.tls_files is not None
            with _environment(
                AWS_ACCESS_KEY_ID="demo",
                AWS_SECRET_ACCESS_KEY="demo",  # noqa: S106 - moto
                **{ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)},
            ):
                label = "PostgreSQL" if engine == "postgres" else "MariaDB"
                results.append(demo_engine(label, server, engine, moto))
    ok = all(results) and bool(results)
    print(
        f"\n{'all rotations succeeded' if ok else 'SOME CHECKS FAILED'}; servers stopped; "
        f"{time.monotonic() - started:.1f} s in all"
    )
    return 0 if ok else 1
