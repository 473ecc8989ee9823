"""The cache against in-process moto, directly and through aws-secretsmanager-caching."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_secretsmanager_caching import SecretCache as AwsSecretCache
from aws_secretsmanager_caching import SecretCacheConfig
from moto import mock_aws

from client_lib import (
    AwsCachingSource,
    Credentials,
    RotationAwareConnector,
    SecretCache,
    SecretCacheError,
)
from keyturn_core.login import LoginFailure
from tests.support.leaks import LeakWatch

SECRET = {"engine": "postgres", "host": "db", "username": "app", "password": "cache-Pass-0001"}


@pytest.fixture
def client(leak_watch: LeakWatch) -> Iterator[Any]:
    leak_watch.add(SECRET["password"])
    with mock_aws():
        sm = boto3.client("secretsmanager")
        sm.create_secret(Name="app/db", SecretString=json.dumps(SECRET))
        yield sm


def test_values_from_secrets_manager(client: Any) -> None:
    cache = SecretCache(client)
    creds = Credentials.from_secret_string(cache.get_string("app/db"))
    assert creds.username == "app"
    assert cache.get("app/db").stages == ("AWSCURRENT",)
    assert cache.stats.fetches == 1


def test_an_existing_aws_cache_as_the_source(client: Any) -> None:
    aws = AwsSecretCache(config=SecretCacheConfig(), client=client)
    cache = SecretCache(AwsCachingSource(aws), ttl=1)
    value = cache.get("app/db")
    assert value.json()["password"] == SECRET["password"]
    assert value.version_id.startswith("hmac:")
    # Keyed: a digest anyone could compute from a guessed value would let logs test guesses.
    digest = hashlib.sha256(json.dumps(SECRET).encode()).hexdigest()[:32]
    assert digest not in value.version_id
    assert cache.refresh("app/db").version_id == value.version_id


def test_a_missing_secret_is_a_permanent_error(client: Any) -> None:
    with pytest.raises(SecretCacheError, match="ResourceNotFoundException, permanent"):
        SecretCache(client).get("nope")


def readme_policy() -> dict[str, Any]:
    """The IAM policy the README gives an application's role."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme[readme.index("**What the application's role needs**") :]
    block = re.search(r"```json\n(.*?)```", section, flags=re.DOTALL)
    assert block is not None
    policy: dict[str, Any] = json.loads(block.group(1))
    return policy


def test_the_readme_policy_covers_what_the_client_calls_and_no_more(client: Any) -> None:
    """Every Secrets Manager operation the client makes through a single-user rotation's window
    (AWSCURRENT refused, AWSPENDING logs in), directly and through aws-secretsmanager-caching,
    is in the README's policy, and the policy grants nothing the client does not call."""
    called: set[str] = set()

    def record(model: Any, **_: Any) -> None:
        called.add(model.name)

    client.meta.events.register("before-call.secrets-manager", record)
    accepted = {SECRET["password"]}

    def connect(creds: Credentials, timeout: float, overrides: Any) -> str:
        if creds.password not in accepted:
            raise PermissionError("refused")
        return creds.password

    def classify(exc: BaseException) -> LoginFailure | None:
        return LoginFailure.AUTHENTICATION if isinstance(exc, PermissionError) else None

    new_password = "cache-Pass-0002"
    # The test's own writes, from another session: not counted as the client's calls.
    admin = boto3.session.Session().client("secretsmanager")
    admin.create_secret(Name="app/db2", SecretString=json.dumps(SECRET))
    sources = [
        ("app/db", client),
        ("app/db2", AwsCachingSource(AwsSecretCache(SecretCacheConfig(), client=client))),
    ]
    for secret_id, source in sources:
        accepted = {SECRET["password"]}
        with SecretCache(source, ttl=300) as cache:
            connector = RotationAwareConnector(cache, secret_id, connect, classify)
            assert connector.connect() in accepted
            # setSecret has run: the database takes only the pending password.
            admin.put_secret_value(
                SecretId=secret_id,
                SecretString=json.dumps({**SECRET, "password": new_password}),
                VersionStages=["AWSPENDING"],
            )
            accepted = {new_password}
            assert connector.connect() == new_password
            assert connector.stats.fallbacks == {"AWSPENDING": 1}

    policy = readme_policy()
    assert policy["Version"] == "2012-10-17"
    secrets_statement, kms_statement = policy["Statement"]
    assert set(secrets_statement["Action"]) == {f"secretsmanager:{op}" for op in called}
    assert called == {"GetSecretValue", "DescribeSecret"}
    # Scoped like the template's own statements: one secret's ARN (with the random suffix),
    # the key only through Secrets Manager in the secret's region.
    arn = secrets_statement["Resource"]
    assert re.fullmatch(r"arn:aws:secretsmanager:([a-z0-9-]+):\d{12}:secret:[\w/+=.@-]+-\?{6}", arn)
    region = arn.split(":")[3]
    assert kms_statement["Action"] == "kms:Decrypt"
    assert kms_statement["Resource"].startswith(f"arn:aws:kms:{region}:")
    assert kms_statement["Condition"] == {
        "StringEquals": {"kms:ViaService": f"secretsmanager.{region}.amazonaws.com"}
    }
    template = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    assert 'kms:ViaService: !Sub "secretsmanager.${AWS::Region}.amazonaws.com"' in template


@pytest.mark.parametrize("driver", ["psycopg", "pymysql"])
def test_a_connector_names_secrets_managers_error_code(client: Any, driver: str) -> None:
    """Every 'secret unavailable' carries Secrets Manager's code, whichever path raised it (one
    mapping of its errors), and is the driver's OperationalError too."""
    import psycopg
    import pymysql

    from client_lib import psycopg_connector, pymysql_connector

    cache = SecretCache(client)
    factory: Any = psycopg_connector if driver == "psycopg" else pymysql_connector
    operational: Any = (
        psycopg.OperationalError if driver == "psycopg" else pymysql.err.OperationalError
    )
    connector = factory(cache, "app/missing")
    with pytest.raises(SecretCacheError) as info:
        connector.connect()
    assert isinstance(info.value, operational)
    assert info.value.code == "ResourceNotFoundException"
    assert info.value.transient is False
    with pytest.raises(SecretCacheError) as direct:
        cache.get("app/missing")
    assert direct.value.code == "ResourceNotFoundException"
