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
    "SuperuserSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:su-AbCdEf",
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


BASIC = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
}
VPC = {
    "Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
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
        # Only AWS's logging policy, and its VPC policy when there is a VPC, are attached by ARN.
        expected = [BASIC] + ([VPC] if overrides else [])
        assert managed(resources, role) == expected


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
        others = [s for s in statements(resources, role) if s is not rotation[0]]
        assert [actions(s) for s in others] == [["secretsmanager:GetRandomPassword"]]


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
        assert not any(
            a.startswith(("ec2:", "kms:"))
            for a in plain_actions | full_actions - {"kms:Decrypt", "kms:GenerateDataKey"}
        )
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= full_actions
        assert VPC not in managed(plain, role)
        assert VPC in managed(full, role)
        assert "VpcConfig" not in plain[function]["Properties"]
        assert "VpcConfig" in full[function]["Properties"]
        superuser = [s for s in statements(full, role) if s.get("Sid") == "ReadTheSuperuserSecret"]
        if "Alternating" in function:
            assert [s["Resource"] for s in superuser] == [{"Ref": "SuperuserSecretArn"}]
        else:
            assert superuser == []
        assert not [s for s in statements(plain, role) if s.get("Sid") == "ReadTheSuperuserSecret"]
    for kms in (
        s
        for s in statements(full, "PostgresSingleUserFunctionRole")
        if s.get("Sid") == "RotatedSecretsKey"
    ):
        assert kms["Condition"]["StringEquals"]["kms:ViaService"]
    alerting = ("AWS::Events::Rule", "AWS::CloudWatch::Alarm")
    assert not [r for r in plain.values() if r["Type"] in alerting]
    assert len([r for r in full.values() if r["Type"] in alerting]) == 5


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
