"""The built artifacts: only what each function needs, importable alone, and rotating for real."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from keyturn_local.driver import register_stand_in_function, rotate
from keyturn_local.servers import (
    TEST_DNS_NAME,
    TEST_DNS_SUFFIX,
    MariaDBServer,
    MotoServer,
    PostgresServer,
)
from rotation_lambdas import DatabaseSecret, EngineFamily
from rotation_lambdas.handlers import make_adapter
from rotation_lambdas.settings import ConnectSettings
from tests.support.db_setup import rds_instance, rds_managed_superuser, setup_secret
from tests.support.leaks import LeakWatch

from .conftest import FUNCTIONS

PYTHON = sys.executable
FORBIDDEN = {"keyturn_local", "client_lib", "tests", "moto", "pytest", "cryptography"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_artifact_holds_only_what_its_function_needs(build_dir: Path, function: str) -> None:
    top = {p.name for p in (build_dir / function).iterdir()}
    driver = FUNCTIONS[function][1]
    other = "pymysql" if driver == "psycopg" else "psycopg"
    assert {"rotation_lambdas", "boto3", "botocore", "aws_lambda_powertools", driver} <= top
    assert other not in top
    assert not top & FORBIDDEN
    assert "driver.py" not in {
        p.name for p in (build_dir / function / "rotation_lambdas").iterdir()
    }


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_artifact_carries_unchecked_bytecode_for_its_python(
    build_dir: Path, function: str
) -> None:
    """Lambda's /var/task is read-only: without bytecode every cold start compiles from source.
    Every module has a pyc for the target (3.12) that is used without looking at the source."""
    artifact = build_dir / function
    sources = [p for p in artifact.rglob("*.py") if "/tests/" not in str(p)]
    assert len(sources) > 500
    missing = []
    for source in sources:
        pyc = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        if not pyc.is_file():
            missing.append(str(source.relative_to(artifact)))
            continue
        flags = int.from_bytes(pyc.read_bytes()[4:8], "little")
        assert flags == 0b01, f"{pyc}: flags {flags:#b} (want hash-based, unchecked)"
    assert missing == []


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_artifact_trusts_the_bundled_rds_cas_by_default(
    build_dir: Path, function: str, translated: dict[str, Any]
) -> None:
    default = translated["Parameters"]["TlsCaBundle"]["Default"]
    bundle = build_dir / function / default
    assert bundle.read_text().startswith("-----BEGIN CERTIFICATE-----")
    code = (
        f"import sys; sys.path.insert(0, {str(build_dir / function)!r});"
        "from rotation_lambdas.settings import ConnectSettings;"
        f"print(ConnectSettings.from_env({{'KEYTURN_TLS_CA_BUNDLE': {default!r}}}).ca_bundle)"
    )
    result = subprocess.run(
        [PYTHON, "-I", "-S", "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == str(bundle)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_each_handler_imports_with_only_its_artifact(build_dir: Path, function: str) -> None:
    handler, driver = FUNCTIONS[function]
    family = "postgres" if driver == "psycopg" else "mysql"
    artifact = build_dir / function
    code = (
        f"import sys; sys.path.insert(0, {str(artifact)!r});"
        f"from rotation_lambdas.handlers import {handler};"
        f"import rotation_lambdas.adapters.{family}, {driver}, boto3;"
        f"print({driver}.__file__); print(boto3.__file__)"
    )
    result = subprocess.run(
        [PYTHON, "-I", "-S", "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    for path in result.stdout.split():
        assert path.startswith(str(artifact)), path


@dataclass
class Rig:
    """A secret on the function's server, the environment the artifact runs with, and the
    stand-in function ARN the driver records: what every end-to-end artifact test needs."""

    client: Any
    arn: str
    initial: dict[str, Any]
    server: PostgresServer | MariaDBServer
    env: dict[str, str]
    stand_in: str

    @classmethod
    def make(
        cls,
        function: str,
        prefix: str,
        moto: MotoServer,
        postgres_server: PostgresServer,
        mariadb_server: MariaDBServer,
        leak_watch: LeakWatch,
    ) -> Rig:
        client = boto3.client("secretsmanager", endpoint_url=moto.endpoint)
        postgres = "Postgres" in function
        arn, initial = setup_secret(
            postgres_server if postgres else mariadb_server,
            "Alternating" in function,
            client,
            leak_watch,
            name=f"{prefix}_{function[:5].lower()}",
        )
        server: PostgresServer | MariaDBServer = postgres_server if postgres else mariadb_server
        assert server.tls_files is not None
        env = {
            "PATH": os.environ.get("PATH", ""),
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "KEYTURN_TLS_CA_BUNDLE": str(server.tls_files.ca_cert),
        }
        stand_in = register_stand_in_function(
            boto3.client("lambda", endpoint_url=moto.endpoint),
            boto3.client("iam", endpoint_url=moto.endpoint),
        )
        return cls(client, arn, dict(initial), server, env, stand_in)


@pytest.fixture
def moto(moto_server: MotoServer) -> MotoServer:
    moto_server.reset()
    return moto_server


class RicProcess:
    """The artifact run as Lambda runs it: AWS's runtime interface client (awslambdaric) in a
    separate process, polling a local Runtime API stand-in, from a read-only copy of the
    artifact, writing no bytecode. The client comes from the test environment's site-packages,
    after the artifact on the path, as the runtime's own client sits outside /var/task."""

    def __init__(
        self,
        artifact: Path,
        handler: str,
        env: Mapping[str, str],
        hosts: Path | None = None,
    ) -> None:
        """``hosts``: an /etc/hosts for the function alone (a private mount namespace), so that
        names resolve for it, through the system's resolver, as a VPC's DNS would answer."""
        import awslambdaric  # type: ignore[import-untyped]

        from .runtime_api import RuntimeApi

        self.api = RuntimeApi("arn:aws:lambda:us-east-1:123456789012:function:keyturn-test")
        site = str(Path(awslambdaric.__file__).resolve().parents[1])
        # What the function prints (its JSON logs: Lambda sends stdout to CloudWatch), in a file
        # so that a full pipe can never block it.
        self.output = artifact.parent / f"{artifact.name}.out"
        self.output_file = self.output.open("w")
        command = [PYTHON, "-B", "-s", "-m", "awslambdaric", f"rotation_lambdas.handlers.{handler}"]
        if hosts is not None:
            command = [*in_private_hosts(hosts), *command]
        self.process = subprocess.Popen(
            command,
            cwd=artifact,  # Lambda's working directory is /var/task
            env=dict(env)
            | {
                "AWS_LAMBDA_RUNTIME_API": self.api.address,
                "PYTHONPATH": f"{artifact}:{site}",
                "LAMBDA_TASK_ROOT": str(artifact),
                "AWS_LAMBDA_FUNCTION_NAME": "keyturn-test",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_LOG_GROUP_NAME": "/keyturn/test",
                "AWS_LAMBDA_LOG_STREAM_NAME": "test",
            },
            stdout=self.output_file,
            stderr=subprocess.STDOUT,
        )

    def __call__(self, event: Mapping[str, Any], context: Any) -> None:
        kind, body = self.api.invoke(event)
        if kind != "response":
            raise RuntimeError(f"{kind}: {body.get('errorType')}: {body.get('errorMessage')}")

    def close(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=30)
        self.output_file.close()
        self.api.close()
        return self.output.read_text()


def in_private_hosts(hosts: Path) -> list[str]:
    """A command prefix: run in a private mount namespace with ``hosts`` as /etc/hosts."""
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux, essential on Debian) is missing"
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", script, str(hosts)]


def read_only_copy(artifact: Path, into: Path) -> Path:
    """A copy without write permission, as /var/task is (root ignores it: -B does the rest)."""
    import shutil
    import stat

    copy = into / artifact.name
    shutil.copytree(artifact, copy)
    for path in [copy, *copy.rglob("*")]:
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return copy


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_full_rotations_under_awslambdaric_from_a_read_only_artifact(
    build_dir: Path,
    function: str,
    moto: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
    tmp_path: Path,
) -> None:
    rig = Rig.make(function, "ric", moto, postgres_server, mariadb_server, leak_watch)
    client, arn, server, stand_in, env = rig.client, rig.arn, rig.server, rig.stand_in, rig.env
    postgres = "Postgres" in function
    assert server.tls_files is not None
    artifact = read_only_copy(build_dir / function, tmp_path)
    before = sorted(str(p.relative_to(artifact)) for p in artifact.rglob("*"))
    handler = RicProcess(artifact, FUNCTIONS[function][0], env)
    try:
        for _ in range(2):
            report = rotate(client, arn, handler, lambda_arn=stand_in, max_attempts=1)
            assert report.attempts == 1
    finally:
        logs = handler.close()
        for path in [artifact, *artifact.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)  # so that tmp_path can be removed
    assert '"message":"step succeeded"' in logs  # the function's JSON logs, through the client
    for version in client.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        value = client.get_secret_value(SecretId=arn, VersionId=version)["SecretString"]
        leak_watch.add_secret_string(value)
    assert leak_watch.values  # the passwords of every version are watched
    leak_watch.assert_absent(logs, where="the function's output under awslambdaric")
    # Nothing written into /var/task (root could: the copy's permissions do not stop it).
    assert sorted(str(p.relative_to(artifact)) for p in artifact.rglob("*")) == before
    current, previous = (
        DatabaseSecret.parse(
            client.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]
        )
        for stage in ("AWSCURRENT", "AWSPREVIOUS")
    )
    family = EngineFamily.POSTGRESQL if postgres else EngineFamily.MYSQL
    adapter = make_adapter(family, ConnectSettings(ca_bundle=str(server.tls_files.ca_cert)))
    with adapter.connect(current):
        pass
    if "Alternating" in function:
        assert current.username == rig.initial["username"]  # two rotations: back to the base
        with adapter.connect(previous):
            pass
    else:
        assert adapter.try_connect(previous) is None


@pytest.mark.parametrize(
    "function", ["PostgresAlternatingUsersFunction", "MySQLAlternatingUsersFunction"]
)
def test_an_rds_managed_superuser_and_a_dns_alias_under_awslambdaric(
    build_dir: Path,
    function: str,
    moto: MotoServer,
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
    tmp_path: Path,
) -> None:
    """What a real account has and the other tests stand in for: the superuser is the master
    secret RDS manages (moto's RDS creates it; host, port and engine come from the RDS API, its
    endpoint name resolving to the local server), and the application's secret names the
    database by an alias of a name its certificate carries (TlsVerifyCanonicalName). Names
    resolve through the system's resolver in the function's own /etc/hosts."""
    postgres = "Postgres" in function
    engine = "postgres" if postgres else "mariadb"
    server: PostgresServer | MariaDBServer = postgres_server if postgres else mariadb_server
    assert server.tls_files is not None
    rds = boto3.client("rds", endpoint_url=moto.endpoint)
    sm = boto3.client("secretsmanager", endpoint_url=moto.endpoint)
    master, base = f"rdsm_{engine[:2]}", f"alias_{engine[:2]}"
    instance = rds_instance(rds, f"keyturn-{engine}", engine, server.port, master)
    master_arn = instance["MasterUserSecret"]["SecretArn"]
    value = rds_managed_superuser(
        sm,
        master_arn,
        server,
        engine,
        leak_watch,
        master=master,
        base=base,
        host="db.internal.example",
    )
    arn = sm.create_secret(Name=f"alias/{base}", SecretString=json.dumps(value))["ARN"]
    hosts = tmp_path / "hosts"
    hosts.write_text(
        "127.0.0.1 localhost\n"
        f"127.0.0.1 {TEST_DNS_NAME} db.internal.example\n"
        f"127.0.0.1 {instance['Endpoint']['Address']}\n"
    )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": moto.endpoint,
        "AWS_ENDPOINT_URL_RDS": moto.endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "KEYTURN_TLS_CA_BUNDLE": str(server.tls_files.ca_cert),
        "KEYTURN_RDS_MANAGED_SUPERUSERS": "true",
        "KEYTURN_TLS_VERIFY_CANONICAL_NAME": "true",
        "KEYTURN_TLS_CANONICAL_NAME_SUFFIXES": TEST_DNS_SUFFIX,
    }
    stand_in = register_stand_in_function(
        boto3.client("lambda", endpoint_url=moto.endpoint),
        boto3.client("iam", endpoint_url=moto.endpoint),
    )
    artifact = read_only_copy(build_dir / function, tmp_path)
    handler = RicProcess(artifact, FUNCTIONS[function][0], env, hosts=hosts)
    try:
        for expected in (base + "_clone", base):
            rotate(sm, arn, handler, lambda_arn=stand_in, max_attempts=1)
            current = DatabaseSecret.parse(sm.get_secret_value(SecretId=arn)["SecretString"])
            leak_watch.add(current.password)
            assert current.username == expected
            assert current.host == "db.internal.example"  # the secret keeps the alias
    finally:
        logs = handler.close()
        for path in [artifact, *artifact.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
    leak_watch.assert_absent(logs, where="the function's output under awslambdaric")
    assert "is managed by RDS: its endpoint came from the RDS API" in logs
    assert instance["Endpoint"]["Address"] in logs
