"""The cache against in-process moto, directly and through aws-secretsmanager-caching."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from aws_secretsmanager_caching import SecretCache as AwsSecretCache
from aws_secretsmanager_caching import SecretCacheConfig
from moto import mock_aws

from client_lib import AwsCachingSource, Credentials, SecretCache, SecretCacheError
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
    assert value.version_id.startswith("sha256:")
    assert cache.refresh("app/db").version_id == value.version_id


def test_a_missing_secret_is_a_permanent_error(client: Any) -> None:
    with pytest.raises(SecretCacheError, match="ResourceNotFoundException, permanent"):
        SecretCache(client).get("nope")
