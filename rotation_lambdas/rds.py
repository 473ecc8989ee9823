"""Where an RDS-managed master secret's database is: asked of the RDS API.

RDS writes only ``username`` and ``password`` into the secret it manages for a master user
(``ManageMasterUserPassword``) and tags the secret with its instance or cluster
(``aws:rds:primaryDBInstanceArn`` / ``aws:rds:primaryDBClusterArn``). Used as the superuser of
alternating users, such a secret gets host, port and engine from DescribeDBInstances or
DescribeDBClusters, as AWS's own multi-user functions do. Tags with the ``aws:`` prefix are
written by AWS only, so whoever may write secrets cannot choose the server through them; and the
superuser still acts only after setSecret's proofs on that server.

Off unless the function is deployed with ``RdsManagedSuperusers=true``
(``KEYTURN_RDS_MANAGED_SUPERUSERS``), which is also what grants the RDS calls.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .aws_calls import MissingResource, translated
from .errors import ConfigurationError, RdsError
from .secret import DatabaseSecret
from .secrets_store import SecretsStore
from .settings import ENV_RDS_MANAGED_SUPERUSERS
from .stages import AWSCURRENT

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient

INSTANCE_TAG = "aws:rds:primaryDBInstanceArn"
CLUSTER_TAG = "aws:rds:primaryDBClusterArn"
_RDS_ARN = re.compile(r"^arn:aws[a-z-]*:rds:[a-z0-9-]+:[0-9]{12}:(db|cluster):[A-Za-z0-9-]{1,63}$")
_NOT_FOUND = ("DBInstanceNotFound", "DBInstanceNotFoundFault", "DBClusterNotFoundFault")


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

    ``client`` is a boto3 RDS client, created on first use when not given (a function whose
    superusers all name their host never pays for it).
    """

    def __init__(self, client: RDSClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> RDSClient:
        if self._client is None:
            import boto3

            self._client = boto3.client("rds")
        return self._client

    def locate(self, tags: Mapping[str, str], label: str) -> dict[str, Any]:
        """``engine``, ``host`` and ``port`` of the instance or cluster the tags name."""
        by_key = {key.lower(): value for key, value in tags.items()}
        instance = by_key.get(INSTANCE_TAG.lower())
        cluster = by_key.get(CLUSTER_TAG.lower())
        arn = instance or cluster
        if arn is None:
            raise ConfigurationError(
                f"the {label} names no host and is not managed by RDS (no {INSTANCE_TAG} or "
                f"{CLUSTER_TAG} tag)",
                hint="add engine, host and port to the secret",
            )
        if not _RDS_ARN.match(arn):
            raise ConfigurationError(f"the {label}'s RDS tag is not an RDS instance or cluster ARN")
        if instance is not None:
            return self._instance(instance, label)
        return self._cluster(arn, label)

    def _instance(self, arn: str, label: str) -> dict[str, Any]:
        try:
            with _translated("DescribeDBInstances"):
                found = self.client.describe_db_instances(DBInstanceIdentifier=arn)["DBInstances"]
        except MissingResource:
            found = []
        if not found:
            raise ConfigurationError(f"the {label}'s RDS instance {arn} does not exist")
        instance = found[0]
        endpoint = instance.get("Endpoint") or {}
        if not endpoint.get("Address"):
            status = instance.get("DBInstanceStatus", "unknown")
            raise RdsError(
                f"the {label}'s RDS instance {arn} has no endpoint (status {status})",
                hint="rotate again once the instance is available",
            )
        return {
            "engine": instance.get("Engine"),
            "host": endpoint["Address"],
            "port": endpoint.get("Port"),
        }

    def _cluster(self, arn: str, label: str) -> dict[str, Any]:
        try:
            with _translated("DescribeDBClusters"):
                found = self.client.describe_db_clusters(DBClusterIdentifier=arn)["DBClusters"]
        except MissingResource:
            found = []
        if not found:
            raise ConfigurationError(f"the {label}'s RDS cluster {arn} does not exist")
        cluster = found[0]
        if not cluster.get("Endpoint"):
            status = cluster.get("Status", "unknown")
            raise RdsError(
                f"the {label}'s RDS cluster {arn} has no endpoint (status {status})",
                hint="rotate again once the cluster is available",
            )
        # The cluster (writer) endpoint: the superuser changes passwords, which needs the writer.
        return {
            "engine": cluster.get("Engine"),
            "host": cluster["Endpoint"],
            "port": cluster.get("Port"),
        }


def read_secret(
    store: SecretsStore, secret_id: str, label: str, rds: RdsLocator | None
) -> DatabaseSecret:
    """Another secret's AWSCURRENT (a superuser's), located through RDS when it names no host."""
    text = store.get_value(secret_id, stage=AWSCURRENT)
    if text is None:
        raise ConfigurationError(f"the {label} has no AWSCURRENT value")
    defaults = None
    if names_no_host(text):
        if rds is None:
            raise ConfigurationError(
                f"the {label} names no host",
                hint="for a master secret RDS manages, deploy with RdsManagedSuperusers=true "
                f"({ENV_RDS_MANAGED_SUPERUSERS}) so the function asks RDS where it is; "
                "otherwise add engine, host and port to the secret",
            )
        defaults = rds.locate(store.describe(secret_id).tags, label)
    return DatabaseSecret.parse(text, label=label, defaults=defaults)


def _translated(operation: str) -> AbstractContextManager[None]:
    return translated(
        "RDS",
        operation,
        error=RdsError,
        denied_hint=f"deploy with RdsManagedSuperusers=true ({ENV_RDS_MANAGED_SUPERUSERS}): "
        "it grants rds:DescribeDBInstances and rds:DescribeDBClusters",
        network_hint="inside a VPC, the function needs an RDS API interface endpoint "
        "(com.amazonaws.<region>.rds) or a NAT gateway",
        missing=_NOT_FOUND,
    )


__all__ = ["CLUSTER_TAG", "INSTANCE_TAG", "RdsLocator", "names_no_host", "read_secret"]
