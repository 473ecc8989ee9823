"""The translated template is created by moto's CloudFormation, with and without the options."""

from __future__ import annotations

import ast
import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from keyturn_local.servers import MOTO_CONFIG

from .conftest import FUNCTIONS, ROOT


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws(config=MOTO_CONFIG):
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="keyturn-artifacts")
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as archive:
            archive.writestr("rotation_lambdas/__init__.py", "")
        s3.put_object(Bucket="keyturn-artifacts", Key="function.zip", Body=buf.getvalue())
        yield


def optional_resources() -> dict[str, str]:
    """Real (moto) resources for every optional parameter."""
    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.0.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    group = ec2.create_security_group(GroupName="rotation", Description="x", VpcId=vpc)["GroupId"]
    kms = boto3.client("kms")
    key = kms.create_key()["KeyMetadata"]["Arn"]
    superuser_key = kms.create_key()["KeyMetadata"]["Arn"]
    superuser = boto3.client("secretsmanager").create_secret(Name="su", SecretString="{}")["ARN"]
    topic = boto3.client("sns").create_topic(Name="rotation-alerts")["TopicArn"]
    return {
        "SubnetIds": ",".join(subnets),
        "SecurityGroupIds": group,
        "KmsKeyArn": key,
        "SuperuserSecretArns": superuser,
        "SuperuserSecretsByTag": "true",
        "LogRetentionDays": "7",
        "SuperuserKmsKeyArn": superuser_key,
        "AlarmTopicArn": topic,
    }


def create(translated: dict[str, Any], parameters: dict[str, str]) -> dict[str, Any]:
    cfn = boto3.client("cloudformation")
    cfn.create_stack(
        StackName="keyturn",
        TemplateBody=json.dumps(translated),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    stack: dict[str, Any] = cfn.describe_stacks(StackName="keyturn")["Stacks"][0]
    return stack


def role_actions(stack: dict[str, Any], function: str) -> set[str]:
    """The actions of the function role's inline policy, as moto's CloudFormation created it.

    (Managed policies are checked on the rendered template: moto attaches AWS managed policies
    only when it preloads them all.)
    """
    stem = function.removesuffix("Function")
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}
    role = outputs[f"{stem}RoleArn"].rsplit("/", 1)[1]
    iam = boto3.client("iam")
    document = iam.get_role_policy(RoleName=role, PolicyName="rotation")["PolicyDocument"]
    if isinstance(document, str):  # moto keeps the document as the repr of a dict
        document = ast.literal_eval(document)
    found: set[str] = set()
    # moto leaves AWS::NoValue as None in lists, where CloudFormation removes the item.
    for statement in filter(None, document["Statement"]):
        action = statement["Action"]
        found.update([action] if isinstance(action, str) else action)
    return found


@pytest.mark.usefixtures("aws")
def test_default_stack_is_created(translated: dict[str, Any]) -> None:
    stack = create(translated, {})
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    functions = boto3.client("lambda").list_functions()["Functions"]
    assert sorted(f["FunctionName"] for f in functions) == sorted(
        [
            "keyturn-pg-single",
            "keyturn-mysql-single",
            "keyturn-pg-alternating",
            "keyturn-mysql-alternating",
        ]
    )
    assert {f["Runtime"] for f in functions} == {"python3.12"}
    for function in FUNCTIONS:
        actions = role_actions(stack, function)
        assert not any(a.startswith(("kms:", "ec2:")) for a in actions)
        assert len(actions) == 7  # 4 rotation, GetRandomPassword, 2 for its own log group
        assert {"logs:CreateLogStream", "logs:PutLogEvents"} <= actions
        assert "secretsmanager:GetSecretValue" in actions
    groups = boto3.client("logs").describe_log_groups()["logGroups"]
    assert sorted(g["logGroupName"] for g in groups) == sorted(
        f"/keyturn/keyturn/{name}"
        for name in ("pg-single", "mysql-single", "pg-alternating", "mysql-alternating")
    )
    assert {g.get("retentionInDays") for g in groups} == {30}


@pytest.mark.usefixtures("aws")
def test_stack_with_every_option_is_created(translated: dict[str, Any]) -> None:
    parameters = optional_resources() | {"Architecture": "arm64", "Runtime": "python3.13"}
    # moto's CloudFormation skips alarms (test_template checks them in the translated template).
    with pytest.warns(UserWarning, match="AWS::CloudWatch::Alarm"):
        stack = create(translated, parameters)
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack.get("StackStatusReason")
    lam = boto3.client("lambda")
    for function in lam.list_functions()["Functions"]:
        config = lam.get_function_configuration(FunctionName=function["FunctionName"])
        assert config["Runtime"] == "python3.13"  # moto does not keep Architectures
        assert config["VpcConfig"]["SubnetIds"]
        env = config["Environment"]["Variables"]
        assert env["KEYTURN_SUPERUSER_SECRET_ARN"] == parameters["SuperuserSecretArns"]
        assert env["KEYTURN_TLS_CA_BUNDLE"] == "rds-ca/global-bundle.pem"
    for name in FUNCTIONS:
        actions = role_actions(stack, name)
        assert {"kms:Decrypt", "kms:GenerateDataKey"} <= actions
    rules = boto3.client("events").list_rules()["Rules"]
    assert len(rules) == 1
    pattern = json.loads(rules[0]["EventPattern"])
    assert pattern["detail"]["eventName"] == ["RotationFailed", "RotationAbandoned"]
    targets = boto3.client("events").list_targets_by_rule(Rule=rules[0]["Name"])["Targets"]
    assert [t["Arn"] for t in targets] == [parameters["AlarmTopicArn"]]


@pytest.mark.parametrize(
    ("engine", "port", "given"),
    [("mysql", 3306, "0"), ("aurora-postgresql", 5432, "0"), ("mariadb", 3307, "3307")],
)
def test_the_example_stack_stores_the_operators_password_and_the_engines_port(
    engine: str, port: int, given: str
) -> None:
    """The secret the example stack writes, evaluated as CloudFormation would (moto's
    CloudFormation does not model AWS::SecretsManager::Secret): valid JSON that the functions'
    parser accepts, with the password the operator gave and the engine's default port."""
    import re

    from cfnlint.decode import decode_str

    from keyturn_core.secret import DatabaseSecret

    template, matches = decode_str((ROOT / "sam" / "example-stack.yaml").read_text())
    assert not matches
    assert template["Parameters"]["Password"]["NoEcho"] is True
    parameters = {
        "Engine": engine,
        "Host": "db.example.internal",
        "Port": given,
        "Username": "app",
        "Password": "the-password-set-by-hand",
    }
    assert re.fullmatch(template["Parameters"]["Password"]["AllowedPattern"], "pa$$w0rd-ok")
    for broken in ('a"bcdefgh', "abc\\defgh", "abc\tdefgh", "abc\ndefgh"):  # invalid JSON
        assert not re.fullmatch(template["Parameters"]["Password"]["AllowedPattern"], broken)
    assert not re.fullmatch(template["Parameters"]["Host"]["AllowedPattern"], 'db", "x": "y')
    text, variables = template["Resources"]["DatabaseSecret"]["Properties"]["SecretString"][
        "Fn::Sub"
    ]
    condition = template["Conditions"]["EngineDefaultPort"]["Fn::Equals"]
    assert condition == [{"Ref": "Port"}, 0]
    chosen = variables["ThePort"]["Fn::If"][1 if given == "0" else 2]
    if given == "0":
        mapping, key, name = chosen["Fn::FindInMap"]
        assert key == {"Ref": "Engine"}
        values = parameters | {"ThePort": str(template["Mappings"][mapping][engine][name])}
    else:
        assert chosen == {"Ref": "Port"}
        values = parameters | {"ThePort": given}
    rendered = re.sub(r"\$\{(\w+)\}", lambda m: values[m.group(1)], text)
    secret = DatabaseSecret.parse(rendered)
    assert (secret.port, secret.username, secret.password) == (port, "app", parameters["Password"])
    assert secret.host == "db.example.internal"
