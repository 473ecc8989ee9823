"""Rotation time of Keyturn's four functions against AWS's own, side by side, in one run.

    .venv/bin/pip install -e '.[bench]'      # PyGreSQL, which AWS's PostgreSQL functions import
    git clone https://github.com/aws-samples/aws-secrets-manager-rotation-lambdas /tmp/aws
    .venv/bin/python bench/rotation_vs_aws.py --aws-templates /tmp/aws [--rotations 15]

The anchors are AWS's templates (SecretsManagerRDS{PostgreSQL,MariaDB}Rotation{SingleUser,
MultiUser}/lambda_function.py), loaded from the folder given, never copied here. Both sides run
in this process against the same PostgreSQL 15 and MariaDB 10.11 servers (started here, on
loopback, without TLS: AWS's functions verify against /etc/pki/tls/cert.pem, Amazon Linux's
trust store, so both sides connect in plaintext) and one in-process moto. A full rotation is the
four steps driven as the service drives them; each function rotates its own user (and superuser,
for multi-user), warm (ours: the engine built once, as a warm Lambda keeps it; theirs: as their
handler is written, a Secrets Manager client per invocation). The two sides take turns, rotation
by rotation, so the machine's drift falls on both. Printed: the median of each side, and the
ratio (AWS's median / ours: above 1, ours is faster).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
from moto import mock_aws

from keyturn_local.driver import register_stand_in_function, rotate
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from keyturn_local.users import create_admin_user, create_app_user
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, build_engine
from rotation_lambdas.secret import EngineFamily
from rotation_lambdas.settings import ENV_TLS_MIN_MODE, ENV_TLS_MODE

AWS_TEMPLATES = {
    ("postgres", SINGLE_USER): "SecretsManagerRDSPostgreSQLRotationSingleUser",
    ("postgres", ALTERNATING_USERS): "SecretsManagerRDSPostgreSQLRotationMultiUser",
    ("mariadb", SINGLE_USER): "SecretsManagerRDSMariaDBRotationSingleUser",
    ("mariadb", ALTERNATING_USERS): "SecretsManagerRDSMariaDBRotationMultiUser",
}
PLAINTEXT = {ENV_TLS_MODE: "disable", ENV_TLS_MIN_MODE: "disable"}
Handler = Callable[[Mapping[str, Any], Any], Any]


def load_aws_function(templates: Path, name: str) -> Handler:
    path = templates / name / "lambda_function.py"
    if not path.is_file():
        raise SystemExit(f"{path} is missing: --aws-templates names a checkout of AWS's templates")
    spec = importlib.util.spec_from_file_location(f"aws_{name}", path)
    assert spec is not None
    assert spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = module.lambda_handler
    return handler


def secret_for(engine: str, server: Any, username: str, password: str) -> dict[str, Any]:
    secret: dict[str, Any] = {
        "engine": engine,
        "host": server.admin.host,
        "port": server.port,
        "username": username,
        "password": password,
        "sslmode": "disable",  # ours
        "ssl": False,  # AWS's
    }
    if engine == "postgres":
        secret["dbname"] = "postgres"
    return secret


class Subject:
    """One function (ours or AWS's) rotating its own secret."""

    def __init__(
        self, label: str, handler: Handler, client: Any, arn: str, function_arn: str
    ) -> None:
        self.label, self.handler, self.client = label, handler, client
        self.arn, self.function_arn = arn, function_arn
        self.seconds: list[float] = []

    def rotate_once(self) -> None:
        started = time.perf_counter()
        rotate(self.client, self.arn, self.handler, lambda_arn=self.function_arn, max_attempts=1)
        self.seconds.append(time.perf_counter() - started)


def make_subject(
    label: str,
    engine: str,
    strategy: str,
    server: Any,
    handler: Handler | None,
    client: Any,
    function_arn: str,
) -> Subject:
    user = f"{label}_{engine[:2]}_{strategy[:3]}"
    password = "Bench-password-" + os.urandom(6).hex()
    create_app_user(server, engine, user, password)
    data = secret_for(engine, server, user, password)
    if strategy == ALTERNATING_USERS:
        admin, admin_password = user + "_su", "Bench-admin-" + os.urandom(6).hex()
        create_admin_user(server, admin, admin_password, drop=[user + "_clone"], administers=[user])
        superuser = secret_for(engine, server, admin, admin_password)
        data["masterarn"] = client.create_secret(
            Name=f"bench/{admin}", SecretString=json.dumps(superuser)
        )["ARN"]
    arn = client.create_secret(Name=f"bench/{user}", SecretString=json.dumps(data))["ARN"]
    if handler is None:
        family = EngineFamily.POSTGRESQL if engine == "postgres" else EngineFamily.MYSQL
        handler = build_engine(family, strategy, client=client, env=PLAINTEXT)
    return Subject(label, handler, client, arn, function_arn)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Both sides log every step; the figures are what this prints."""
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aws-templates", type=Path, default=os.environ.get("AWS_TEMPLATES"))
    parser.add_argument("--rotations", type=int, default=15)
    args = parser.parse_args()
    if args.aws_templates is None:
        raise SystemExit("--aws-templates: a checkout of aws-secrets-manager-rotation-lambdas")
    try:
        import pg  # noqa: F401 - AWS's PostgreSQL functions need PyGreSQL
    except ImportError:
        raise SystemExit("PyGreSQL is missing: pip install -e '.[bench]'") from None
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SECRETS_MANAGER_ENDPOINT": "https://secretsmanager.us-east-1.amazonaws.com",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
    }.items():
        os.environ.setdefault(key, value)
    handlers = {
        key: load_aws_function(args.aws_templates, name) for key, name in AWS_TEMPLATES.items()
    }
    with (
        PostgresServer(tls=False) as postgres,
        MariaDBServer(tls=False) as mariadb,
        mock_aws(config=MOTO_CONFIG),
    ):
        client = boto3.client("secretsmanager")
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        rows = []
        for (engine, strategy), aws_handler in handlers.items():
            server = postgres if engine == "postgres" else mariadb
            ours = make_subject("kt", engine, strategy, server, None, client, function_arn)
            theirs = make_subject(
                "aws", engine, strategy, server, aws_handler, client, function_arn
            )
            with quiet():
                ours.rotate_once()  # warm-up: imports, first connections, the clone created
                theirs.rotate_once()
                ours.seconds.clear()
                theirs.seconds.clear()
                for _ in range(args.rotations):
                    ours.rotate_once()
                    theirs.rotate_once()
            rows.append((engine, strategy, ours.seconds, theirs.seconds))
    print(f"median of {args.rotations} full rotations each, in turns, same servers, plaintext")
    print(f"{'function':<32} {'Keyturn ms':>10} {'AWS ms':>8} {'AWS / Keyturn':>14}")
    for engine, strategy, ours_s, theirs_s in rows:
        mine, aws = statistics.median(ours_s) * 1000, statistics.median(theirs_s) * 1000
        print(f"{engine + ' ' + strategy:<32} {mine:>10.1f} {aws:>8.1f} {aws / mine:>13.2f}x")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
