"""A failed step is logged once, classified, with a hint that says what to look at."""

from __future__ import annotations

import json
import socket
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from keyturn_local.driver import register_stand_in_function
from keyturn_local.servers import MOTO_CONFIG
from rotation_lambdas import EngineFamily, NetworkError
from rotation_lambdas.handlers import build_engine

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def failures(out: str) -> list[dict[str, Any]]:
    records = [json.loads(line) for line in out.splitlines() if line.startswith('{"level"')]
    return [r for r in records if r["level"] == "ERROR"]


def test_secrets_manager_unreachable_points_at_the_vpc_endpoint(
    capfd: pytest.CaptureFixture[str],
) -> None:
    client = boto3.client(
        "secretsmanager",
        endpoint_url=f"http://127.0.0.1:{closed_port()}",
        config=Config(retries={"max_attempts": 1}, connect_timeout=1),
    )
    engine = build_engine(EngineFamily.POSTGRESQL, client=client)
    event = {"Step": "createSecret", "SecretId": "prod/db", "ClientRequestToken": str(uuid.uuid4())}
    with pytest.raises(NetworkError, match="Secrets Manager could not be reached"):
        engine(event, None)
    (logged,) = failures(capfd.readouterr().out)  # once
    assert logged["error_category"] == "network"
    assert "VPC endpoint" in logged["hint"]
    assert logged["step"] == "createSecret"


def test_database_unreachable_points_at_security_groups(
    capfd: pytest.CaptureFixture[str],
) -> None:
    secret = {
        "engine": "postgres",
        "host": "127.0.0.1",
        "port": closed_port(),
        "username": "app",
        "password": "Initial-password-1",
    }
    with mock_aws(config=MOTO_CONFIG):
        client = boto3.client("secretsmanager")
        arn = client.create_secret(Name="prod/db", SecretString=json.dumps(secret))["ARN"]
        token = str(uuid.uuid4())
        client.rotate_secret(
            SecretId=arn,
            ClientRequestToken=token,
            RotationLambdaARN=register_stand_in_function(
                boto3.client("lambda"), boto3.client("iam")
            ),
            RotationRules={"AutomaticallyAfterDays": 30},
        )
        engine = build_engine(EngineFamily.POSTGRESQL, client=client)
        engine({"Step": "createSecret", "SecretId": arn, "ClientRequestToken": token}, None)
        with pytest.raises(NetworkError, match="could not connect"):
            engine({"Step": "setSecret", "SecretId": arn, "ClientRequestToken": token}, None)
    (logged,) = failures(capfd.readouterr().out)
    assert logged["error_category"] == "network"
    assert "security groups" in logged["hint"]
    assert logged["step"] == "setSecret"
