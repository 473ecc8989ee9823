"""Alternating users where the other user's password can only be checked by a login (MySQL 8's
salted hashes; no note on the clone), against in-process moto and an in-memory database: at
most one refused login per invocation, and a re-run after a crash finds the password it set
without one. (PostgreSQL binds its clones and MariaDB reads hashes: their real-server tests
need no login of the other user at all.)"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_local.driver import register_stand_in_function
from keyturn_local.servers import MOTO_CONFIG
from rotation_lambdas import (
    AlternatingUsersStrategy,
    AuthenticationError,
    DatabaseSecret,
    NetworkError,
    PasswordPolicy,
    RotationEngine,
    SecretsStore,
)
from rotation_lambdas.stages import PASSWORD_SET
from tests.support.fakes import FakeAdmin, FakeDatabase
from tests.support.harness import SecretHarness
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

from .conftest import LOGGER, TOKENS

APP: dict[str, Any] = {
    "engine": "mysql",
    "host": "db.example.internal",
    "port": 3306,
    "username": "app",
    "password": "initial-Password-0001",
}
ADMIN: dict[str, Any] = {**APP, "username": "admin", "password": "admin-Password-0001"}


@dataclass
class Pair(SecretHarness):
    db: FakeDatabase
    admin: FakeAdmin

    def rotation(self, token: str) -> None:
        self.start_rotation(token)
        for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
            self.run(step, token)
        self.client.update_secret_version_stage(  # moto leaves AWSPENDING on the new current
            SecretId=self.arn, VersionStage="AWSPENDING", RemoveFromVersionId=token
        )

    def current(self) -> DatabaseSecret:
        text = self.client.get_secret_value(SecretId=self.arn)["SecretString"]
        self.leaks.add_secret_string(text)
        return DatabaseSecret.parse(text)


@pytest.fixture
def pair(leak_watch: LeakWatch) -> Iterator[Pair]:
    with mock_aws(config=MOTO_CONFIG):
        client = StrictSecretsManager(boto3.client("secretsmanager"))
        function_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        admin_arn = client.create_secret(Name="admin", SecretString=json.dumps(ADMIN))["ARN"]
        arn = client.create_secret(
            Name="app", SecretString=json.dumps({**APP, "masterarn": admin_arn})
        )["ARN"]
        leak_watch.add(APP["password"])
        leak_watch.add(ADMIN["password"])
        db = FakeDatabase()
        db.add(DatabaseSecret.from_mapping(APP))
        db.add(DatabaseSecret.from_mapping(ADMIN))
        admin = FakeAdmin(db)
        engine = RotationEngine(
            AlternatingUsersStrategy(admin), SecretsStore(client.sm), policy=PasswordPolicy(),
            logger=LOGGER,
        )  # fmt: skip
        yield Pair(client, arn, function_arn, engine, leak_watch, db, admin)


def test_steady_state_proves_the_other_user_by_its_previous_password(pair: Pair) -> None:
    pair.rotation(TOKENS[0])  # creates app_clone (no proof needed: it did not exist)
    assert pair.current().username == "app_clone"
    pair.rotation(TOKENS[1])  # app changes: proven by AWSPREVIOUS's login as app
    pair.rotation(TOKENS[2])  # app_clone changes: proven by AWSPREVIOUS's login as app_clone
    assert pair.current().username == "app_clone"
    assert pair.db.refused == 0
    assert not any(PASSWORD_SET in s for s in pair.versions().values())  # finishSecret took it


def test_a_rerun_after_the_password_was_set_costs_no_refused_login(pair: Pair) -> None:
    pair.rotation(TOKENS[0])
    token = pair.start_rotation(TOKENS[1])
    pair.run("createSecret", token)
    pair.admin.fail_after_set = 1
    with pytest.raises(NetworkError):
        pair.run("setSecret", token)  # app's password was set; the answer was lost
    assert PASSWORD_SET in pair.versions()[token]
    pair.run("setSecret", token)  # AWSPREVIOUS no longer logs in: the label says AWSPENDING
    assert pair.db.refused == 0
    for step in ("testSecret", "finishSecret"):
        pair.run(step, token)
    assert pair.current().username == "app"


def test_a_forged_label_costs_one_refused_login_then_the_rotation_goes_on(pair: Pair) -> None:
    pair.rotation(TOKENS[0])
    token = pair.start_rotation(TOKENS[1])
    pair.run("createSecret", token)
    pair.client.update_secret_version_stage(
        SecretId=pair.arn, VersionStage=PASSWORD_SET, MoveToVersionId=token
    )
    with pytest.raises(AuthenticationError, match="refusing to change 'app'"):
        pair.run("setSecret", token)
    assert pair.db.refused == 1
    assert PASSWORD_SET not in pair.versions()[token]
    pair.run("setSecret", token)
    assert pair.db.refused == 1


def test_an_existing_clone_whose_password_no_version_holds(pair: Pair) -> None:
    """One refused login per invocation, as the service retries; nothing changed."""
    pair.db.passwords[(APP["host"], APP["port"], "app_clone")] = "someone-elses-Password-1"
    token = pair.start_rotation(TOKENS[0])
    pair.run("createSecret", token)
    for attempt in (1, 2, 3):
        with pytest.raises(AuthenticationError, match="not this secret's clone"):
            pair.run("setSecret", token)
        assert pair.db.refused == attempt
    assert pair.db.changes == 0
