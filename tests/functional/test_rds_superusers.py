"""RDS-managed master secrets as superusers: host, port and engine from moto's RDS API."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from keyturn_local.servers import MOTO_CONFIG
from rotation_lambdas import (
    ConfigurationError,
    EngineFamily,
    PrivilegeError,
    RdsError,
    RdsLocator,
    SecretMetadata,
    SecretsStore,
)
from rotation_lambdas.handlers import build_engine
from rotation_lambdas.rds import CLUSTER_TAG, INSTANCE_TAG, names_no_host, read_secret
from rotation_lambdas.settings import ENV_RDS_MANAGED_SUPERUSERS
from tests.support.db_setup import rds_instance
from tests.support.leaks import LeakWatch

ACCOUNT = "123456789012"
SECRET = f"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:rds!db-1-AbCdEf"


def owned_by_rds(tags: dict[str, str], arn: str = SECRET, owner: str | None = "rds") -> Any:
    """DescribeSecret of a master secret RDS manages, as the locator reads it."""
    return SecretMetadata(arn, False, {}, tags=tags, owning_service=owner)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config=MOTO_CONFIG):
        yield


def managed_instance(engine: str = "postgres", port: int = 6543) -> tuple[str, str, str]:
    """An RDS instance whose master password RDS manages: (secret ARN, address, instance ARN)."""
    rds = boto3.client("rds")
    instance = rds_instance(rds, f"main-{engine}", engine, port, "admin")
    return (
        instance["MasterUserSecret"]["SecretArn"],
        instance["Endpoint"]["Address"],
        instance["DBInstanceArn"],
    )


def test_an_instance_secret_is_located_through_its_rds_tag(
    aws: None, leak_watch: LeakWatch
) -> None:
    arn, address, instance_arn = managed_instance()
    store = SecretsStore(boto3.client("secretsmanager"))
    assert store.describe(arn).tags[INSTANCE_TAG] == instance_arn  # what RDS writes
    text = store.get_value(arn, stage="AWSCURRENT")
    assert text is not None
    leak_watch.add_secret_string(text)
    assert set(json.loads(text)) == {"username", "password"}
    assert names_no_host(text)
    secret = read_secret(store, arn, "superuser secret", RdsLocator())
    assert (secret.host, secret.port, secret.engine, secret.family, secret.username) == (
        address,
        6543,
        "postgres",
        EngineFamily.POSTGRESQL,
        "admin",
    )
    assert address.endswith(".rds.amazonaws.com")
    assert "host" not in secret.raw  # a new version written from it would not gain keys


def test_a_cluster_secret_is_located_at_the_writer_endpoint(
    aws: None, leak_watch: LeakWatch
) -> None:
    rds = boto3.client("rds")
    cluster = rds.create_db_cluster(
        DBClusterIdentifier="aurora-main",
        Engine="aurora-mysql",
        MasterUsername="admin",
        ManageMasterUserPassword=True,
        Port=3307,
    )["DBCluster"]
    arn = cluster["MasterUserSecret"]["SecretArn"]
    store = SecretsStore(boto3.client("secretsmanager"))
    assert store.describe(arn).tags[CLUSTER_TAG] == cluster["DBClusterArn"]
    secret = read_secret(store, arn, "superuser secret", RdsLocator())
    leak_watch.add(secret.password)
    assert (secret.host, secret.port, secret.family) == (
        cluster["Endpoint"],
        3307,
        EngineFamily.MYSQL,
    )
    assert ".cluster-" in secret.host
    assert ".cluster-ro-" not in secret.host


def test_off_by_default_with_a_hint_naming_the_setting(aws: None, leak_watch: LeakWatch) -> None:
    arn, _, _ = managed_instance()
    store = SecretsStore(boto3.client("secretsmanager"))
    with pytest.raises(ConfigurationError) as caught:
        read_secret(store, arn, "superuser secret", None)
    assert "names no host" in str(caught.value)
    assert "RdsManagedSuperusers=true" in str(caught.value)
    assert ENV_RDS_MANAGED_SUPERUSERS in str(caught.value)


def test_a_secret_naming_its_host_is_used_as_written(aws: None, leak_watch: LeakWatch) -> None:
    sm = boto3.client("secretsmanager")
    value = {"engine": "postgres", "host": "db.internal", "username": "su", "password": "pw-1"}
    leak_watch.add("pw-1")
    arn = sm.create_secret(
        Name="su", SecretString=json.dumps(value), Tags=[{"Key": INSTANCE_TAG, "Value": "x"}]
    )["ARN"]
    rds = boto3.client("rds")
    with Stubber(rds):  # no response queued: any RDS call would fail the test
        secret = read_secret(SecretsStore(sm), arn, "superuser secret", RdsLocator(rds))
    assert secret.host == "db.internal"


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        ({}, "has no aws:rds:primaryDBInstanceArn or"),
        ({INSTANCE_TAG: "db-1"}, "tag is not an RDS instance ARN"),
        ({CLUSTER_TAG: f"arn:aws:rds:us-east-1:{ACCOUNT}:db:x"}, "tag is not an RDS cluster ARN"),
        ({INSTANCE_TAG: f"arn:aws:rds:us-east-1:{ACCOUNT}:db:x\n"}, "not an RDS instance ARN"),
        ({INSTANCE_TAG: f"arn:aws:rds:us-east-1:{ACCOUNT}:db:x;y"}, "not an RDS instance ARN"),
        ({INSTANCE_TAG: f"arn:aws:rds:us-east-1:{ACCOUNT}:db:gone"}, "does not exist"),
        ({CLUSTER_TAG: f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:gone"}, "does not exist"),
    ],
)
def test_missing_or_malformed_rds_tags_are_configuration_errors(
    aws: None, tags: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        RdsLocator().locate(owned_by_rds(tags), "superuser secret")
    assert expected in str(caught.value)


def test_only_a_secret_rds_owns_and_only_its_exact_tag_keys_count(aws: None) -> None:
    _, _, instance_arn = managed_instance()
    for metadata in (
        owned_by_rds({INSTANCE_TAG: instance_arn}, owner=None),  # tagged by someone else
        owned_by_rds({INSTANCE_TAG: instance_arn}, owner="appflow"),
        owned_by_rds({INSTANCE_TAG.upper(): instance_arn}),  # not RDS's key
    ):
        with pytest.raises(ConfigurationError):
            RdsLocator().locate(metadata, "superuser secret")


def stubbed(operation: str, **error: Any) -> RdsLocator:
    client = boto3.client("rds")
    stubber = Stubber(client)
    if error:
        stubber.add_client_error(operation, **error)
    else:
        response: dict[str, Any] = (
            {
                "DBInstances": [
                    {
                        "DBInstanceArn": INSTANCE,
                        "DBInstanceStatus": "creating",
                        "Engine": "postgres",
                    }
                ]
            }
            if operation == "describe_db_instances"
            else {
                "DBClusters": [
                    {"DBClusterArn": CLUSTER, "Status": "creating", "Engine": "aurora-postgresql"}
                ]
            }
        )
        stubber.add_response(operation, response)
    stubber.activate()
    return RdsLocator(client)


INSTANCE = f"arn:aws:rds:us-east-1:{ACCOUNT}:db:main"
CLUSTER = f"arn:aws:rds:us-east-1:{ACCOUNT}:cluster:main"


def test_a_denied_rds_call_names_the_setting_that_grants_it() -> None:
    locator = stubbed(
        "describe_db_instances", service_error_code="AccessDenied", http_status_code=403
    )
    with pytest.raises(PrivilegeError) as caught:
        locator.locate(owned_by_rds({INSTANCE_TAG: INSTANCE}), "superuser secret")
    assert "RDS denied DescribeDBInstances (AccessDenied)" in str(caught.value)
    assert "RdsManagedSuperusers=true" in str(caught.value)
    assert caught.value.__cause__ is not None


@pytest.mark.parametrize(
    ("operation", "tag", "arn"),
    [
        ("describe_db_instances", INSTANCE_TAG, INSTANCE),
        ("describe_db_clusters", CLUSTER_TAG, CLUSTER),
    ],
)
def test_a_database_without_an_endpoint_yet_says_so(operation: str, tag: str, arn: str) -> None:
    with pytest.raises(RdsError) as caught:
        stubbed(operation).locate(owned_by_rds({tag: arn}), "superuser secret")
    assert "has no endpoint (status creating)" in str(caught.value)
    assert caught.value.category == "rds"


def test_other_rds_failures_are_rds_errors() -> None:
    locator = stubbed("describe_db_clusters", service_error_code="Throttling", http_status_code=400)
    with pytest.raises(RdsError, match=r"RDS DescribeDBClusters failed \(Throttling\)"):
        locator.locate(owned_by_rds({CLUSTER_TAG: CLUSTER}), "superuser secret")


def test_the_function_setting_turns_the_lookup_on(aws: None) -> None:
    sm = boto3.client("secretsmanager")
    off = build_engine(EngineFamily.POSTGRESQL, "alternating_users", client=sm, env={})
    on = build_engine(
        EngineFamily.POSTGRESQL,
        "alternating_users",
        client=sm,
        env={ENV_RDS_MANAGED_SUPERUSERS: "true"},
    )
    assert off.rds is None
    assert isinstance(on.rds, RdsLocator)
    with pytest.raises(ConfigurationError, match=ENV_RDS_MANAGED_SUPERUSERS):
        build_engine(EngineFamily.POSTGRESQL, client=sm, env={ENV_RDS_MANAGED_SUPERUSERS: "maybe"})


def test_an_empty_instance_tag_does_not_list_every_instance(aws: None) -> None:
    """DescribeDBInstances with an empty identifier lists them all: never ask it that."""
    managed_instance()  # an unrelated instance the lookup must not fall on
    cluster = boto3.client("rds").create_db_cluster(
        DBClusterIdentifier="aurora-main",
        Engine="aurora-postgresql",
        MasterUsername="admin",
        MasterUserPassword="unused-Password-1",
        Port=5433,
    )["DBCluster"]
    tags = {INSTANCE_TAG: "", CLUSTER_TAG: cluster["DBClusterArn"]}
    found = RdsLocator().locate(owned_by_rds(tags), "superuser secret")
    assert found["host"] == cluster["Endpoint"]


def test_an_answer_for_another_database_is_not_taken() -> None:
    client = boto3.client("rds")
    stubber = Stubber(client)
    other = {
        "DBInstanceArn": INSTANCE + "-other",
        "Engine": "postgres",
        "Endpoint": {"Address": "other.rds.amazonaws.com", "Port": 5432},
    }
    stubber.add_response("describe_db_instances", {"DBInstances": [other]})
    stubber.activate()
    with pytest.raises(ConfigurationError, match="does not exist"):
        RdsLocator(client).locate(owned_by_rds({INSTANCE_TAG: INSTANCE}), "superuser secret")


@pytest.mark.parametrize(
    "secret_arn",
    [
        "arn:aws:secretsmanager:us-east-1:999999999999:secret:rds!db-1-AbCdEf",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:rds!db-1-AbCdEf",
        "arn:aws-cn:secretsmanager:us-east-1:123456789012:secret:rds!db-1-AbCdEf",
        "rds!db-1",  # not an ARN: nothing to compare with, so refused
    ],
)
def test_the_database_must_be_where_the_secret_is(secret_arn: str) -> None:
    with pytest.raises(ConfigurationError, match="not in the secret's partition, region and"):
        RdsLocator().locate(owned_by_rds({INSTANCE_TAG: INSTANCE}, secret_arn), "superuser")


def test_rds_says_where_whatever_else_the_secret_holds(aws: None, leak_watch: LeakWatch) -> None:
    arn, address, _ = managed_instance(port=6543)
    sm = boto3.client("secretsmanager")
    leak_watch.add("pw-Other-1")
    steering = {"username": "admin", "password": "pw-Other-1", "host": None, "port": 6000}
    sm.put_secret_value(SecretId=arn, SecretString=json.dumps(steering | {"engine": "mysql"}))
    secret = read_secret(SecretsStore(sm), arn, "superuser secret", RdsLocator())
    assert (secret.host, secret.port, secret.engine) == (address, 6543, "postgres")
    assert "host" not in secret.raw


def test_a_secret_anyone_wrote_with_rds_s_tag_is_not_located(
    aws: None, leak_watch: LeakWatch
) -> None:
    """moto lets anyone write an aws: tag; even where AWS would too, the secret is not RDS's."""
    _, _, instance_arn = managed_instance()
    sm = boto3.client("secretsmanager")
    leak_watch.add("pw-Forged-1")
    arn = sm.create_secret(
        Name="forged",
        SecretString=json.dumps({"username": "admin", "password": "pw-Forged-1"}),
        Tags=[{"Key": INSTANCE_TAG, "Value": instance_arn}],
    )["ARN"]
    with pytest.raises(ConfigurationError, match="not a master secret RDS manages"):
        read_secret(SecretsStore(sm), arn, "superuser secret", RdsLocator())
