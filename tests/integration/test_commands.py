"""The commands end to end, in separate processes, against the moto server and real databases."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from keyturn_local.servers import MotoServer
from rotation_lambdas import DatabaseSecret
from rotation_lambdas.handlers import make_adapter
from rotation_lambdas.settings import ConnectSettings
from tests.support.leaks import LeakWatch

from .conftest import ENGINES, Server, family_of, new_app_user

pytestmark = pytest.mark.integration
KEYTURN = str(Path(sys.executable).with_name("keyturn"))


def run_keyturn(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_ENDPOINT_URL") and k != "POWERTOOLS_LOG_LEVEL"
    }
    return subprocess.run(
        [KEYTURN, *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("engine_name", ENGINES)
def test_keyturn_rotate_against_the_moto_server(
    engine_name: str, moto_server: MotoServer, request: pytest.FixtureRequest, leak_watch: LeakWatch
) -> None:
    server: Server = request.getfixturevalue(f"{engine_name}_server")
    assert server.tls_files is not None
    initial = new_app_user(engine_name, server, leak_watch)
    client = boto3.client("secretsmanager", endpoint_url=moto_server.endpoint)
    arn = client.create_secret(Name=f"e2e/{initial['username']}", SecretString=json.dumps(initial))[
        "ARN"
    ]
    function = "postgres_single_user" if engine_name == "postgres" else "mysql_single_user"
    env = {"KEYTURN_TLS_CA_BUNDLE": str(server.tls_files.ca_cert)}
    args = ["rotate", arn, "--function", function, "--endpoint-url", moto_server.endpoint]

    result = run_keyturn(*args, "--register-stand-in", env=env)
    for version_id in client.describe_secret(SecretId=arn)["VersionIdsToStages"]:
        leak_watch.add_secret_string(
            client.get_secret_value(SecretId=arn, VersionId=version_id)["SecretString"]
        )
    leak_watch.assert_absent(result.stdout + result.stderr, where="keyturn rotate's output")
    assert result.returncode == 0, result.stderr[-2000:]
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        assert f"attempt 1  {step}" in result.stdout
    assert "succeeded in 1 attempt(s)" in result.stdout

    adapter = make_adapter(
        family_of(engine_name), ConnectSettings(ca_bundle=str(server.tls_files.ca_cert))
    )
    new = DatabaseSecret.parse(client.get_secret_value(SecretId=arn)["SecretString"])
    assert new.password != initial["password"]
    with adapter.connect(new):
        pass
    assert adapter.try_connect(DatabaseSecret.from_mapping(initial)) is None

    # A second rotation reuses the function recorded on the secret.
    again = run_keyturn(*args, env=env)
    assert again.returncode == 0, again.stderr[-2000:]


def test_keyturn_rotate_refuses_while_a_rotation_is_in_progress(moto_server: MotoServer) -> None:
    client = boto3.client("secretsmanager", endpoint_url=moto_server.endpoint)
    lam = boto3.client("lambda", endpoint_url=moto_server.endpoint)
    iam = boto3.client("iam", endpoint_url=moto_server.endpoint)
    from keyturn_local.driver import register_stand_in_function

    arn = client.create_secret(Name="e2e/stuck", SecretString="{}")["ARN"]
    client.rotate_secret(
        SecretId=arn,
        RotationLambdaARN=register_stand_in_function(lam, iam),
        RotationRules={"AutomaticallyAfterDays": 30},
    )
    result = run_keyturn(
        "rotate",
        arn,
        "--function",
        "mysql_single_user",
        "--endpoint-url",
        moto_server.endpoint,
        env={},
    )
    assert result.returncode == 2
    assert "a previous rotation is not complete" in result.stderr
    assert "--resume" in result.stderr


def test_keyturn_demo_short() -> None:
    """The README's main command, as CI runs it: all four functions and an application."""
    result = run_keyturn("demo", "--short", env={}, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for function in (
        "postgres_single_user",
        "postgres_alternating_users",
        "mysql_single_user",
        "mysql_alternating_users",
    ):
        assert f"{function:<26} rotation 2/2" in out
        row = next(line for line in out.splitlines() if line.startswith(f"{function}  "))
        assert "2 ok, 0 failed" in row
        assert row.split()[-1] == "0"  # failed application operations
        assert int(row.split()[-2]) > 0  # application operations
    assert "8 rotations, 0 failed;" in out
    assert "application operations, 0 failed; servers stopped" in out
    assert out.rstrip().endswith("demo OK")
    assert '"level"' not in out  # the functions' JSON logs only with --verbose
    assert '"_aws"' not in out  # nor their metrics
    assert "Warning" not in result.stderr
