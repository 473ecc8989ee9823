"""The keyturn command's pure parts: status assessment, following a rotation, AWS errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from keyturn_cli import CliError, assess, main
from keyturn_cli.rotate import rotate_by_service
from keyturn_cli.status import OFF, OK, OVERDUE, STUCK

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:stack-pg-single"


def entry(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Name": "prod/db",
        "ARN": "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf",
        "SecretVersionsToStages": {"v1": ["AWSCURRENT"]},
        "CreatedDate": NOW - timedelta(days=100),
    }
    return {**base, **extra}


def rotating(**extra: Any) -> dict[str, Any]:
    return entry(
        RotationEnabled=True,
        RotationLambdaARN=FUNCTION,
        RotationRules={"AutomaticallyAfterDays": 30},
        **extra,
    )


def test_status_states() -> None:
    assert assess(entry(), NOW).state == OFF
    healthy = assess(rotating(LastRotatedDate=NOW - timedelta(days=3)), NOW)
    assert (healthy.state, healthy.function) == (OK, "stack-pg-single")
    assert healthy.next_rotation == NOW + timedelta(days=27)
    overdue = assess(rotating(LastRotatedDate=NOW - timedelta(days=31)), NOW)
    assert overdue.state == OVERDUE
    assert "was due" in overdue.detail
    explicit = assess(rotating(NextRotationDate=NOW - timedelta(hours=1)), NOW)
    assert explicit.state == OVERDUE
    stuck = assess(
        rotating(SecretVersionsToStages={"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}), NOW
    )
    assert (stuck.state, "v2" in stuck.detail) == (STUCK, True)
    # AWSPENDING left on the current version (a finished rotation) is not stuck.
    done = assess(
        rotating(
            SecretVersionsToStages={"v2": ["AWSCURRENT", "AWSPENDING"]},
            LastRotatedDate=NOW - timedelta(days=1),
        ),
        NOW,
    )
    assert done.state == OK
    # Epoch seconds (the JSON API's form) are read as UTC.
    epoch = assess(rotating(LastRotatedDate=(NOW - timedelta(days=1)).timestamp()), NOW)
    assert epoch.last_rotated == NOW - timedelta(days=1)
    assert epoch.as_dict()["last_rotated"] == "2026-11-22T12:00:00+00:00"


class FollowedClient:
    """Secrets Manager as seen by `keyturn rotate` in service mode, on a fake clock."""

    def __init__(self, finishes_at: float | None, clock: list[float]) -> None:
        self.finishes_at = finishes_at
        self.clock = clock
        self.token: str | None = None

    def describe_secret(self, SecretId: str) -> dict[str, Any]:
        versions: dict[str, list[str]] = {"old": ["AWSCURRENT"]}
        if self.token is not None:
            done = self.finishes_at is not None and self.clock[0] >= self.finishes_at
            versions = (
                {"old": ["AWSPREVIOUS"], self.token: ["AWSCURRENT"]}
                if done
                else {
                    "old": ["AWSCURRENT"],
                    self.token: ["AWSPENDING"],
                }
            )
        return {"RotationLambdaARN": FUNCTION, "VersionIdsToStages": versions}

    def rotate_secret(self, SecretId: str, ClientRequestToken: str, RotationLambdaARN: str) -> None:
        assert RotationLambdaARN == FUNCTION
        self.token = ClientRequestToken


def follow(finishes_at: float | None, capfd: pytest.CaptureFixture[str]) -> tuple[int, str]:
    clock = [0.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    client = FollowedClient(finishes_at, clock)
    code = rotate_by_service(client, "prod/db", wait=30, clock=lambda: clock[0], sleep=sleep)
    return code, capfd.readouterr().out


def test_service_rotation_is_followed_to_awscurrent(capfd: pytest.CaptureFixture[str]) -> None:
    code, out = follow(5.0, capfd)
    assert code == 0
    assert "AWSPENDING" in out
    assert "AWSCURRENT" in out
    assert "succeeded in" in out


def test_service_rotation_that_never_finishes_points_at_the_logs(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(CliError, match="did not finish within 30 s") as info:
        follow(None, capfd)
    assert "/aws/lambda/stack-pg-single" in str(info.value)
    assert "keyturn preflight" in str(info.value)


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> pytest.MonkeyPatch:
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_missing_region_credentials_and_profile_are_clear_errors(
    no_aws: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    assert main(["status"]) == 2
    assert "no AWS region: pass --region" in capfd.readouterr().err
    assert main(["status", "--profile", "nope"]) == 2
    assert "the AWS profile 'nope' is not in your AWS config" in capfd.readouterr().err
    assert main(["status", "--region", "eu-west-1"]) == 2
    assert "no AWS credentials" in capfd.readouterr().err
