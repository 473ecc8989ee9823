"""An RDS-managed master secret (username and password only) as the alternating-users superuser,
on real PostgreSQL and MariaDB: host, port and engine come from moto's RDS, whose endpoint name
is mapped to the local server (it resolves nowhere) as the only change to what RDS answers."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_cli.preflight import Preflight
from keyturn_local.driver import RotationFailed, register_stand_in_function, rotate
from keyturn_local.servers import MOTO_CONFIG, MariaDBServer, PostgresServer
from rotation_lambdas import DatabaseSecret, Step
from rotation_lambdas.handlers import ALTERNATING_USERS, build_engine, make_adapter
from rotation_lambdas.settings import (
    ENV_RDS_MANAGED_SUPERUSERS,
    ENV_TLS_CA_BUNDLE,
    ConnectSettings,
)
from tests.support.db_setup import rds_instance, rds_managed_superuser
from tests.support.leaks import LeakWatch
from tests.support.strict_sm import StrictSecretsManager

from .conftest import ENGINES, family_of

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("engine_name", ENGINES)
def test_alternating_users_with_an_rds_managed_master_secret(
    engine_name: str, request: pytest.FixtureRequest, leak_watch: LeakWatch
) -> None:
    server: PostgresServer | MariaDBServer = request.getfixturevalue(f"{engine_name}_server")
    assert server.tls_files is not None
    master, base = f"rdsmaster_{engine_name[:2]}", f"rdsapp_{engine_name[:2]}"
    with mock_aws(config=MOTO_CONFIG):
        rds = boto3.client("rds")
        answered: list[str] = []
        if engine_name == "postgres":  # an RDS instance
            instance = rds_instance(rds, "keyturn-postgres", "postgres", server.port, master)
            rds_name = instance["Endpoint"]["Address"]
            master_arn = instance["MasterUserSecret"]["SecretArn"]

            def to_local_server(parsed: dict[str, Any], **_: Any) -> None:
                for found in parsed.get("DBInstances", []):
                    answered.append(found["Endpoint"]["Address"])
                    found["Endpoint"]["Address"] = server.admin.host

            rds.meta.events.register("after-call.rds.DescribeDBInstances", to_local_server)
        else:  # an Aurora MySQL cluster, played by MariaDB
            cluster = rds.create_db_cluster(
                DBClusterIdentifier="keyturn-aurora",
                Engine="aurora-mysql",
                MasterUsername=master,
                ManageMasterUserPassword=True,
                Port=server.port,
            )["DBCluster"]
            rds_name = cluster["Endpoint"]
            master_arn = cluster["MasterUserSecret"]["SecretArn"]

            def to_local_server(parsed: dict[str, Any], **_: Any) -> None:
                for found in parsed.get("DBClusters", []):
                    answered.append(found["Endpoint"])
                    found["Endpoint"] = server.admin.host

            rds.meta.events.register("after-call.rds.DescribeDBClusters", to_local_server)
        assert rds_name.endswith(".rds.amazonaws.com")

        # RDS set the master user's password, and wrote the secret as it does: no host.
        sm = StrictSecretsManager(boto3.client("secretsmanager"))
        value = rds_managed_superuser(
            sm,
            master_arn,
            server,
            engine_name,
            leak_watch,
            master=master,
            base=base,
            host=server.admin.host,
        )
        arn = sm.create_secret(Name=f"rds/{base}", SecretString=json.dumps(value))["ARN"]
        stand_in = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
        family = family_of(engine_name)
        env = {ENV_TLS_CA_BUNDLE: str(server.tls_files.ca_cert)}

        # Off (the default): setSecret refuses before the database is touched, naming the setting.
        off_arn = sm.create_secret(Name=f"rds/{base}-off", SecretString=json.dumps(value))["ARN"]
        off = build_engine(family, ALTERNATING_USERS, client=sm.sm, env=env, rds_client=rds)
        with pytest.raises(RotationFailed) as refused:
            rotate(sm.sm, off_arn, off, lambda_arn=stand_in, max_attempts=1)
        last = refused.value.report.steps[-1]
        assert last.step is Step.SET
        assert last.error is not None
        assert "RdsManagedSuperusers=true" in last.error
        assert answered == []

        on = build_engine(
            family,
            ALTERNATING_USERS,
            client=sm.sm,
            env=env | {ENV_RDS_MANAGED_SUPERUSERS: "true"},
            rds_client=rds,
        )
        adapter = make_adapter(family, ConnectSettings(ca_bundle=str(server.tls_files.ca_cert)))
        for expected in (base + "_clone", base):
            rotate(sm.sm, arn, on, lambda_arn=stand_in, max_attempts=1)
            current, previous = (
                DatabaseSecret.parse(
                    sm.get_secret_value(SecretId=arn, VersionStage=stage)["SecretString"]
                )
                for stage in ("AWSCURRENT", "AWSPREVIOUS")
            )
            leak_watch.add(current.password, previous.password)
            assert current.username == expected
            for secret in (current, previous):
                with adapter.connect(secret):
                    pass
        assert answered
        assert set(answered) == {rds_name}
        # The superuser's secret is RDS's: read, never written.
        master_versions = sm.sm.list_secret_version_ids(SecretId=master_arn)["Versions"]
        assert len(master_versions) == 2  # RDS's first value and the password set above

        # keyturn preflight finds it too, and says what the function needs.
        checks = Preflight(
            sm.sm,
            arn,
            settings=ConnectSettings(ca_bundle=str(server.tls_files.ca_cert)),
            rds_client_factory=lambda: rds,
        ).run()
        found = {c.name: c for c in checks}["superuser secret"]
        assert found.status == "warn", found
        assert "located through RDS" in found.reason
        assert "RdsManagedSuperusers=true" in found.hint
        assert [c.name for c in checks if c.status == "fail"] == []
