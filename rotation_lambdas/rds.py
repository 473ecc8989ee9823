"""Where an RDS-managed master secret's database is: asked of the RDS API.

RDS writes only ``username`` and ``password`` into the secret it manages for a master user
(``ManageMasterUserPassword``) and tags the secret with its instance or cluster
(``aws:rds:primaryDBInstanceArn`` / ``aws:rds:primaryDBClusterArn``). Used as the superuser of
alternating users, such a secret gets host, port and engine from DescribeDBInstances or
DescribeDBClusters, as AWS's own multi-user functions do. Only a secret RDS owns counts: no one
else can write it, so its tags are RDS's and whoever may write secrets cannot choose the server
through them; and the superuser still acts only after setSecret's proofs on that server.

Off unless the function is deployed with ``RdsManagedSuperusers=true``
(``KEYTURN_RDS_MANAGED_SUPERUSERS``), which is also what grants the RDS calls.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .aws_calls import MissingResource, translated
from .errors import ConfigurationError, RdsError
from .secret import DatabaseSecret
from .secrets_store import SecretsStore
from .settings import ENV_RDS_MANAGED_SUPERUSERS
from .stages import AWSCURRENT, SecretMetadata

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

INSTANCE_TAG = "aws:rds:primaryDBInstanceArn"
CLUSTER_TAG = "aws:rds:primaryDBClusterArn"
_RDS_ARN = re.compile(
    r"arn:(aws[a-z-]*):rds:([a-z0-9-]+):([0-9]{12}):(db|cluster):[A-Za-z0-9-]{1,63}"
)
_SECRET_ARN = re.compile(r"arn:(aws[a-z-]*):secretsmanager:([a-z0-9-]+):([0-9]{12}):secret:.+")


def names_no_host(text: str) -> bool:
    """Whether a secret's JSON names no host, as an RDS-managed master secret does. Anything the
    parser would refuse (not JSON, not an object) is left for the parser to name."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(data, dict) and data.get("host") is None


class RdsLocator:
    """Host, port and engine of an RDS-managed secret, from the RDS API by the secret's tags.

    ``client`` is a boto3 RDS client; without one, ``factory`` (or boto3's defaults) makes it on
    first use, so a function whose superusers all name their host never pays for it.
    """

    def __init__(
        self,
        client: RDSClient | None = None,
        *,
        factory: Callable[[], RDSClient] | None = None,
    ) -> None:
        self._client = client
        self._factory = factory

    @property
    def client(self) -> RDSClient:
        if self._client is None and self._factory is not None:
            self._client = self._factory()
        if self._client is None:
            import boto3

            self._client = boto3.client("rds", config=client_config())
        return self._client

    def locate(self, secret: SecretMetadata, label: str) -> dict[str, Any]:
        """``engine``, ``host`` and ``port`` of the instance or cluster that RDS's tag on
        ``secret`` (its DescribeSecret) names, in the secret's partition, region and account.

        Only a secret RDS owns (``OwningService``) counts: no one else can write it, so every
        tag on it is RDS's. The tag keys are matched exactly, as AWS compares them."""
        if secret.owning_service != "rds":
            raise ConfigurationError(
                f"the {label} names no host and is not a master secret RDS manages",
                hint="add engine, host and port to the secret",
            )
        tagged = [(t, secret.tags[t]) for t in (INSTANCE_TAG, CLUSTER_TAG) if secret.tags.get(t)]
        if not tagged:
            raise ConfigurationError(
                f"the {label} has no {INSTANCE_TAG} or {CLUSTER_TAG} tag",
                hint="add engine, host and port to the secret",
            )
        tag, arn = tagged[0]
        match = _RDS_ARN.fullmatch(arn)
        if match is None or (match.group(4) == "db") != (tag == INSTANCE_TAG):
            kind = "instance" if tag == INSTANCE_TAG else "cluster"
            raise ConfigurationError(f"the {label}'s {tag} tag is not an RDS {kind} ARN")
        owner = _SECRET_ARN.fullmatch(secret.arn)
        if owner is None or owner.groups() != match.groups()[:3]:
            raise ConfigurationError(
                f"the {label}'s RDS {match.group(4)} {arn} is not in the secret's partition, "
                "region and account"
            )
        if tag == INSTANCE_TAG:
            return self._instance(arn, label)
        return self._cluster(arn, label)

    def _instance(self, arn: str, label: str) -> dict[str, Any]:
        found: Any = []
        with contextlib.suppress(MissingResource), _translated("DescribeDBInstances"):
            found = self.client.describe_db_instances(DBInstanceIdentifier=arn)["DBInstances"]
        instance = _the_one(found, "DBInstanceArn", arn, label, "instance")
        endpoint = instance.get("Endpoint") or {}
        located = {"engine": instance.get("Engine"), "host": endpoint.get("Address")}
        located["port"] = endpoint.get("Port")
        return _with_endpoint(located, arn, label, "instance", instance.get("DBInstanceStatus"))

    def _cluster(self, arn: str, label: str) -> dict[str, Any]:
        found: Any = []
        with contextlib.suppress(MissingResource), _translated("DescribeDBClusters"):
            found = self.client.describe_db_clusters(DBClusterIdentifier=arn)["DBClusters"]
        cluster = _the_one(found, "DBClusterArn", arn, label, "cluster")
        # The cluster (writer) endpoint: the superuser changes passwords, which needs the writer.
        located = {"engine": cluster.get("Engine"), "host": cluster.get("Endpoint")}
        located["port"] = cluster.get("Port")
        return _with_endpoint(located, arn, label, "cluster", cluster.get("Status"))


def _the_one(found: Any, arn_key: str, arn: str, label: str, kind: str) -> Any:
    """The entry of an RDS answer for exactly ``arn``."""
    for entry in found:
        if entry.get(arn_key) == arn:
            return entry
    raise ConfigurationError(f"the {label}'s RDS {kind} {arn} does not exist")


def _with_endpoint(
    located: dict[str, Any], arn: str, label: str, kind: str, status: str | None
) -> dict[str, Any]:
    if not located["host"]:
        raise RdsError(
            f"the {label}'s RDS {kind} {arn} has no endpoint (status {status or 'unknown'})",
            hint=f"rotate again once the {kind} is available",
        )
    return located


def read_secret(
    store: SecretsStore, secret_id: str, label: str, rds: RdsLocator | None
) -> DatabaseSecret:
    """Another secret's AWSCURRENT (a superuser's), located through RDS when it names no host:
    then engine, host and port are RDS's, whatever else the secret holds."""
    text = store.get_value(secret_id, stage=AWSCURRENT)
    if text is None:
        raise ConfigurationError(f"the {label} has no AWSCURRENT value")
    if names_no_host(text):
        if rds is None:
            raise ConfigurationError(
                f"the {label} names no host",
                hint="for a master secret RDS manages, deploy with RdsManagedSuperusers=true "
                f"({ENV_RDS_MANAGED_SUPERUSERS}) so the function asks RDS where it is; "
                "otherwise add engine, host and port to the secret",
            )
        located = rds.locate(store.describe(secret_id), label)
        data = {k: v for k, v in json.loads(text).items() if k not in located}
        return DatabaseSecret.from_mapping(data, label=label, defaults=located)
    return DatabaseSecret.parse(text, label=label)


def client_config() -> Any:
    """Timeouts bounded below the function's own, so a missing VPC endpoint is reported as such."""
    from botocore.config import Config

    return Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})


def _translated(operation: str) -> AbstractContextManager[None]:
    return translated(
        "RDS",
        operation,
        error=RdsError,
        denied_hint="RdsManagedSuperusers=true grants rds:DescribeDBInstances and "
        "rds:DescribeDBClusters on this account's and region's databases: check that the stack "
        "has it, and for a permissions boundary or SCP that denies them",
        network_hint="inside a VPC, the function needs an RDS API interface endpoint "
        "(com.amazonaws.<region>.rds) or a NAT gateway",
        missing=("DBInstanceNotFound", "DBInstanceNotFoundFault", "DBClusterNotFoundFault"),
    )


__all__ = [
    "CLUSTER_TAG",
    "INSTANCE_TAG",
    "RdsLocator",
    "client_config",
    "names_no_host",
    "read_secret",
]
