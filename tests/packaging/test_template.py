"""The template: linters clean; least-privilege IAM checked on the translated template."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from .conftest import FUNCTIONS, ROOT, SAM, sam_env
from .render import render

ACCOUNT_SET = {
    "SubnetIds": "subnet-0a1b2c3d,subnet-4e5f6a7b",
    "SecurityGroupIds": "sg-0123456789abcdef0",
    "KmsKeyArn": "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
    "SuperuserSecretArns": (
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:su-AbCdEf,"
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/su-??????"
    ),
    "SuperuserSecretsByTag": "true",
    "RdsManagedSuperusers": "true",
    "Layers": "arn:aws:lambda:us-east-1:123456789012:layer:my-ca:3",
    "SuperuserKmsKeyArn": (
        "arn:aws:kms:us-east-1:123456789012:key/9999abcd-12ab-34cd-56ef-1234567890ab"
    ),
    "AlarmTopicArn": "arn:aws:sns:us-east-1:123456789012:rotation-alerts",
}


def test_cfn_lint_is_clean() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "cfn-lint"), "template.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_sam_validate_lint_is_clean() -> None:
    result = subprocess.run(
        [str(SAM), "validate", "--lint"],
        cwd=ROOT,
        env=sam_env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is a valid SAM Template" in result.stdout + result.stderr


ACCOUNT_SECRETS = {
    "Fn::Sub": "arn:${AWS::Partition}:secretsmanager:${AWS::Region}:${AWS::AccountId}:secret:*"
}


def statements(resources: dict[str, Any], role: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for policy in resources[role]["Properties"].get("Policies", []):
        out += policy["PolicyDocument"]["Statement"]
    return out


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return [action] if isinstance(action, str) else list(action)


def managed(resources: dict[str, Any], role: str) -> list[Any]:
    return list(resources[role]["Properties"].get("ManagedPolicyArns", []))


@pytest.mark.parametrize("overrides", [{}, ACCOUNT_SET], ids=["defaults", "everything-set"])
def test_no_statement_grants_every_action(
    translated: dict[str, Any], overrides: dict[str, str]
) -> None:
    resources = render(translated, overrides)["Resources"]
    roles = [n for n, r in resources.items() if r["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 4
    for role in roles:
        for statement in statements(resources, role):
            for action in actions(statement):
                assert action != "*", role
                assert not action.endswith(":*"), f"{role}: {action}"
        # No managed policy: AWS's basic and VPC policies allow logs:* on every log group.
        assert managed(resources, role) == []


def test_secret_access_is_limited_to_secrets_naming_the_function(
    translated: dict[str, Any],
) -> None:
    resources = render(translated, {})["Resources"]
    for function in FUNCTIONS:
        role = f"{function}Role"
        rotation = [
            s for s in statements(resources, role) if "secretsmanager:PutSecretValue" in actions(s)
        ]
        assert len(rotation) == 1
        condition = rotation[0]["Condition"]["StringEquals"][
            "secretsmanager:resource/AllowRotationLambdaArn"
        ]
        name = resources[function]["Properties"]["FunctionName"]["Fn::Sub"]
        assert condition["Fn::Sub"].endswith(f":function:{name}")
        assert rotation[0]["Resource"] == ACCOUNT_SECRETS  # this account's, this region's
        others = [s for s in statements(resources, role) if s is not rotation[0]]
        assert [actions(s) for s in others] == [
            ["logs:CreateLogStream", "logs:PutLogEvents"],
            ["secretsmanager:GetRandomPassword"],
        ]


def test_invoke_permissions_carry_the_source_account(translated: dict[str, Any]) -> None:
    resources = render(translated, {})["Resources"]
    permissions = [r for r in resources.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert len(permissions) == 4
    for permission in permissions:
        assert permission["Properties"]["Principal"] == "secretsmanager.amazonaws.com"
        assert permission["Properties"]["SourceAccount"] == {"Ref": "AWS::AccountId"}


def test_vpc_kms_superuser_and_alerting_only_when_set(translated: dict[str, Any]) -> None:
    plain = render(translated, {})["Resources"]
    full = render(translated, ACCOUNT_SET)["Resources"]
    for function in FUNCTIONS:
        role = f"{function}Role"
        plain_actions = {a for s in statements(plain, role) for a in actions(s)}
        full_actions = {a for s in statements(full, role) for a in actions(s)}
        assert not any(a.startswith(("ec2:", "kms:")) for a in plain_actions)
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= full_actions
        assert "ec2:CreateNetworkInterface" in full_actions
        assert "VpcConfig" not in plain[function]["Properties"]
        assert "VpcConfig" in full[function]["Properties"]
        assert "Layers" not in plain[function]["Properties"]
        assert full[function]["Properties"]["Layers"] == {"Ref": "Layers"}
        by_sid = {s.get("Sid"): s for s in statements(full, role)}
        if "Alternating" in function:
            assert by_sid["ReadTheSuperuserSecret"]["Resource"] == {"Ref": "SuperuserSecretArns"}
            tagged = by_sid["ReadSuperuserSecretsByTag"]
            assert tagged["Resource"] == ACCOUNT_SECRETS
            assert tagged["Condition"] == {
                "StringEquals": {"aws:ResourceTag/KeyturnSuperuser": "true"}
            }
        else:
            assert "ReadTheSuperuserSecret" not in by_sid
            assert "ReadSuperuserSecretsByTag" not in by_sid
        plain_sids = {s.get("Sid") for s in statements(plain, role)}
        assert not plain_sids & {"ReadTheSuperuserSecret", "ReadSuperuserSecretsByTag"}
    for kms in (
        s
        for s in statements(full, "PostgresSingleUserFunctionRole")
        if s.get("Sid") == "RotatedSecretsKey"
    ):
        assert kms["Condition"]["StringEquals"]["kms:ViaService"]
    alerting = ("AWS::Events::Rule", "AWS::CloudWatch::Alarm")
    assert not [r for r in plain.values() if r["Type"] in alerting]
    assert len([r for r in full.values() if r["Type"] in alerting]) == 5


def test_rds_lookups_only_for_alternating_users_and_only_when_asked(
    translated: dict[str, Any],
) -> None:
    """RdsManagedSuperusers: DescribeSecret on the superuser secrets (their aws:rds tags) and
    the two RDS reads, scoped to this account's and region's instances and clusters."""
    superusers_only = {k: v for k, v in ACCOUNT_SET.items() if k != "RdsManagedSuperusers"}
    without = render(translated, superusers_only)["Resources"]
    with_rds = render(translated, ACCOUNT_SET)["Resources"]
    account = "arn:${AWS::Partition}:rds:${AWS::Region}:${AWS::AccountId}"
    for function in FUNCTIONS:
        role = f"{function}Role"
        off = {a for s in statements(without, role) for a in actions(s)}
        assert not any(a.startswith("rds:") for a in off)
        on = {s.get("Sid"): s for s in statements(with_rds, role)}
        env = with_rds[function]["Properties"]["Environment"]["Variables"]
        assert env["KEYTURN_RDS_MANAGED_SUPERUSERS"] == "true"
        assert (
            "KEYTURN_RDS_MANAGED_SUPERUSERS"
            not in (without[function]["Properties"]["Environment"]["Variables"])
        )
        if "Alternating" not in function:
            assert not any(a.startswith("rds:") for s in on.values() for a in actions(s))
            continue
        assert actions(on["LocateRdsManagedSuperusers"]) == [
            "rds:DescribeDBInstances",
            "rds:DescribeDBClusters",
        ]
        assert on["LocateRdsManagedSuperusers"]["Resource"] == [
            {"Fn::Sub": f"{account}:db:*"},
            {"Fn::Sub": f"{account}:cluster:*"},
        ]
        read = {"secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"}
        for sid in ("ReadTheSuperuserSecret", "ReadSuperuserSecretsByTag"):
            assert set(actions(on[sid])) == read
            plain_sid = next(s for s in statements(without, role) if s.get("Sid") == sid)
            assert actions(plain_sid) == ["secretsmanager:GetSecretValue"]


def test_outputs_name_every_function_and_role(translated: dict[str, Any]) -> None:
    outputs = translated["Outputs"]
    for function in FUNCTIONS:
        stem = function.removesuffix("Function")
        assert outputs[f"{stem}FunctionArn"]["Value"] == {"Fn::GetAtt": [function, "Arn"]}
        assert outputs[f"{stem}RoleArn"]["Value"] == {"Fn::GetAtt": [f"{function}Role", "Arn"]}


def test_the_example_stack_is_lint_clean() -> None:
    result = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "cfn-lint"), "sam/example-stack.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_function_logs_to_its_own_group_with_retention(translated: dict[str, Any]) -> None:
    resources = render(translated, {})["Resources"]
    groups = {n: r for n, r in resources.items() if r["Type"] == "AWS::Logs::LogGroup"}
    assert len(groups) == 4
    for function in FUNCTIONS:
        group = function.removesuffix("Function") + "LogGroup"
        properties = groups[group]["Properties"]
        assert properties["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        name = resources[function]["Properties"]["FunctionName"]["Fn::Sub"]
        short = name.removeprefix("${AWS::StackName}-")
        # Not the /aws/lambda/ name Lambda would have created already (an update would fail).
        assert properties["LogGroupName"] == {"Fn::Sub": f"/keyturn/${{AWS::StackName}}/{short}"}
        assert resources[function]["Properties"]["LoggingConfig"] == {"LogGroup": {"Ref": group}}
        logs = [
            s for s in statements(resources, f"{function}Role") if s.get("Sid") == "WriteOwnLogs"
        ]
        assert [s["Resource"] for s in logs] == [{"Fn::GetAtt": [group, "Arn"]}]


PARAMETER_CASES = [
    (
        "SecretsManagerEndpoint",
        "https://vpce-0123-abcd.secretsmanager.us-east-1.vpce.amazonaws.com",
        True,
    ),
    ("SecretsManagerEndpoint", "https://localhost:4566/", True),
    ("SecretsManagerEndpoint", "vpce-0123-abcd.secretsmanager.us-east-1.vpce.amazonaws.com", False),
    ("SecretsManagerEndpoint", "http://secretsmanager.example", False),
    ("SuperuserSecretArns", "arn:aws:secretsmanager:us-east-1:123456789012:secret:su-AbCdEf", True),
    (
        "SuperuserSecretArns",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:a/b-??????",
        True,
    ),
    ("SuperuserSecretArns", "arn:aws:secretsmanager:us-east-1:123456789012:secret:su", False),
    ("SuperuserSecretArns", "arn:aws:secretsmanager:us-east-1:123456789012:secret:su-AbC", False),
    ("SuperuserSecretArns", "arn:aws:secretsmanager:us-east-1:123456789012:secret:su-*", False),
    ("Layers", "arn:aws:lambda:eu-west-1:123456789012:layer:ca-bundle:12", True),
    ("Layers", "arn:aws:lambda:eu-west-1:123456789012:layer:ca-bundle", False),
]


@pytest.mark.parametrize(("name", "value", "valid"), PARAMETER_CASES)
def test_parameters_refuse_values_that_would_fail_later(name: str, value: str, valid: bool) -> None:
    """CloudFormation applies AllowedPattern to each element of a list: checked the same way."""
    import re

    from cfnlint.decode import decode_str

    template, _ = decode_str((ROOT / "template.yaml").read_text())
    pattern = template["Parameters"][name]["AllowedPattern"]
    assert bool(re.fullmatch(pattern, value)) is valid
    assert re.fullmatch(pattern, "")  # every one of them may be left empty


SAR_AUTHOR = r"^[a-z0-9](([a-z0-9]|-(?!-))*[a-z0-9])?$"
SAR_NAME = r"[a-zA-Z0-9\-]+"
SAR_LABEL = r"^[a-zA-Z0-9+\-_:\/@]+$"


def test_the_serverless_application_repository_metadata_follows_its_rules() -> None:
    """SAR's documented constraints (AWS SAM developer guide, Metadata section properties)."""
    import re
    import tomllib

    from cfnlint.decode import decode_str

    template, _ = decode_str((ROOT / "template.yaml").read_text())
    sar = template["Metadata"]["AWS::ServerlessRepo::Application"]
    assert re.fullmatch(SAR_NAME, sar["Name"])
    assert 1 <= len(sar["Name"]) <= 140
    assert 1 <= len(sar["Description"]) <= 256
    assert re.fullmatch(SAR_AUTHOR, sar["Author"])
    assert len(sar["Author"]) <= 127
    assert len(sar["Labels"]) <= 10
    for label in sar["Labels"]:
        assert re.fullmatch(SAR_LABEL, label)
        assert len(label) <= 127
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert sar["SemanticVersion"] == pyproject["version"]
    assert re.fullmatch(
        r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)", sar["SemanticVersion"]
    )
    assert sar["SpdxLicenseId"] == pyproject["license"]["text"] == "Apache-2.0"
    license_text = (ROOT / sar["LicenseUrl"]).read_text()
    assert "Apache License" in license_text
    assert "Version 2.0" in license_text
    assert (ROOT / sar["ReadmeUrl"]).stat().st_size < 5 * 2**20  # SAR's 5 MB limit
    assert sar["SourceCodeUrl"] == pyproject["urls"]["Source"]
    assert sar["SourceCodeUrl"].startswith("https://")
