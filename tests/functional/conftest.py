from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from aws_lambda_powertools import Logger
from moto import mock_aws

from keyturn_local.driver import register_stand_in_function
from keyturn_local.servers import MOTO_CONFIG
from rotation_lambdas import (
    DatabaseSecret,
    PasswordPolicy,
    RotationEngine,
    SecretsStore,
    SingleUserStrategy,
)
from tests.support.fakes import FakeAdapter, FakeDatabase
from tests.support.harness import SecretHarness
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

APP_SECRET: dict[str, Any] = {
    "engine": "postgres",
    "host": "db.example.internal",
    "port": 5432,
    "username": "app",
    "password": "initial-Password-0001",
    "dbname": "appdb",
    "dbClusterIdentifier": "cluster-1",
}


@dataclass
class World(SecretHarness):
    """In-process moto, a secret with rotation enabled, a fake database and an engine."""

    db: FakeDatabase

    def value(self, stage: str, version_id: str | None = None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"SecretId": self.arn, "VersionStage": stage}
        if version_id:
            kwargs["VersionId"] = version_id
        text = self.client.get_secret_value(**kwargs)["SecretString"]
        self.leaks.add_secret_string(text)
        data: dict[str, Any] = json.loads(text)
        return data

    def snapshot(self) -> tuple[dict[str, list[str]], dict[str, str], dict[Any, str]]:
        """Everything a failed step must leave untouched: stages, values, database passwords."""
        values = {}
        for version_id in self.versions():
            try:
                response = self.client.get_secret_value(SecretId=self.arn, VersionId=version_id)
                values[version_id] = str(response.get("SecretString", response.get("SecretBinary")))
            except self.client.exceptions.ResourceNotFoundException:
                values[version_id] = "<no value>"
        return self.versions(), values, dict(self.db.passwords)


TOKENS = [f"{i:08d}-aaaa-bbbb-cccc-{i:012d}" for i in range(1, 40)]

LOGGER = Logger(service="keyturn-test")


@pytest.fixture
def world(leak_watch: LeakWatch) -> Iterator[World]:
    with mock_aws(config=MOTO_CONFIG):
        client = StrictSecretsManager(boto3.client("secretsmanager"))
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        arn = client.create_secret(Name="app/db", SecretString=json.dumps(APP_SECRET))["ARN"]
        leak_watch.add(APP_SECRET["password"])
        db = FakeDatabase()
        db.add(DatabaseSecret.from_mapping(APP_SECRET))
        engine = RotationEngine(
            SingleUserStrategy(FakeAdapter(db)),
            SecretsStore(client.sm),
            policy=PasswordPolicy(),
            logger=LOGGER,
        )
        yield World(client, arn, function_arn, engine, leak_watch, db)
