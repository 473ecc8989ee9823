"""A local rotation driver: does what Secrets Manager does when it rotates, against moto.

It creates the pending version for a new token (``RotateSecret``), invokes the four steps in order
with the service's event shape, and on failure re-drives the whole rotation with the same token.
It enforces the service's rule that moto does not: no new rotation while another one's AWSPENDING
version is not yet AWSCURRENT (pass ``resume=True`` to re-drive that one instead).

After a successful rotation it removes AWSPENDING from the new AWSCURRENT version. AWS counts
both "AWSPENDING on AWSCURRENT" and "no AWSPENDING" as a finished rotation, but moto refuses the
next ``RotateSecret`` in the first state, so the driver leaves the second.

Meant for moto (in-process or server). Against a real account ``RotateSecret`` would itself invoke
the deployed function.
"""

from __future__ import annotations

import io
import json
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rotation_lambdas.errors import ConfigurationError, ProtocolError
from rotation_lambdas.event import Step
from rotation_lambdas.stages import AWSCURRENT, AWSPENDING, SecretMetadata, unfinished_rotation

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

Handler = Callable[[Mapping[str, Any], Any], Any]
DEFAULT_ROTATION_DAYS = 30


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One invocation of one step."""

    attempt: int
    step: Step
    seconds: float
    error: str | None = None


@dataclass(slots=True)
class RotationReport:
    """What a driven rotation did: versions before and after, and every invocation."""

    secret_id: str
    token: str
    before: dict[str, list[str]]
    after: dict[str, list[str]] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return max((r.attempt for r in self.steps), default=0)


class RotationFailed(ProtocolError):
    """The rotation still failed after every attempt; ``report`` holds what happened."""

    def __init__(self, message: str, report: RotationReport) -> None:
        super().__init__(message)
        self.report = report


def rotate(
    client: SecretsManagerClient,
    secret_id: str,
    handler: Handler,
    *,
    lambda_arn: str | None = None,
    token: str | None = None,
    resume: bool = False,
    max_attempts: int = 3,
    rotation_days: int = DEFAULT_ROTATION_DAYS,
    on_step: Callable[[StepRecord], None] | None = None,
) -> RotationReport:
    """Rotate ``secret_id`` once, invoking ``handler`` in-process for each step.

    ``lambda_arn`` is the rotation function recorded on the secret (default: the one already
    there); with moto it must exist in moto's Lambda (see :func:`register_stand_in_function`).
    """
    if max_attempts < 1:
        raise ConfigurationError("max_attempts must be at least 1")
    described = client.describe_secret(SecretId=secret_id)
    metadata = SecretMetadata.from_describe(described)
    in_progress = _pending_not_current(metadata)
    before = {k: list(v) for k, v in metadata.versions.items()}
    if in_progress is not None:
        if not resume:
            raise ProtocolError(
                "a previous rotation is not complete (AWSPENDING is on a version that is not "
                "AWSCURRENT)",
                hint="re-drive it with resume=True (--resume) or remove its AWSPENDING label",
            )
        token = in_progress
    else:
        arn = lambda_arn or described.get("RotationLambdaARN")
        if not arn:
            raise ConfigurationError("the secret has no rotation function; pass lambda_arn")
        token = token or str(uuid.uuid4())
        client.rotate_secret(
            SecretId=secret_id,
            ClientRequestToken=token,
            RotationLambdaARN=arn,
            RotationRules={"AutomaticallyAfterDays": rotation_days},
        )
    report = RotationReport(secret_id=secret_id, token=token, before=before)
    for attempt in range(1, max_attempts + 1):
        if _drive_once(handler, secret_id, token, attempt, report, on_step):
            clear_pending_label(client, secret_id, token)
            report.after = _versions(client, secret_id)
            return report
    report.after = _versions(client, secret_id)
    raise RotationFailed(f"the rotation failed after {max_attempts} attempts", report)


def _drive_once(
    handler: Handler,
    secret_id: str,
    token: str,
    attempt: int,
    report: RotationReport,
    on_step: Callable[[StepRecord], None] | None,
) -> bool:
    for step in Step:
        event = {"Step": step.value, "SecretId": secret_id, "ClientRequestToken": token}
        started = time.monotonic()
        error: str | None = None
        try:
            handler(event, None)
        except Exception as exc:  # noqa: BLE001 - the service retries after any failure alike
            error = f"{type(exc).__name__}: {exc}"
        record = StepRecord(attempt, step, time.monotonic() - started, error)
        report.steps.append(record)
        if on_step is not None:
            on_step(record)
        if error is not None:
            return False
    return True


def clear_pending_label(client: SecretsManagerClient, secret_id: str, token: str) -> None:
    """Remove AWSPENDING from ``token``'s version once it is AWSCURRENT (a finished rotation)."""
    stages = _versions(client, secret_id).get(token, [])
    if AWSPENDING in stages and AWSCURRENT in stages:
        client.update_secret_version_stage(
            SecretId=secret_id, VersionStage=AWSPENDING, RemoveFromVersionId=token
        )


def _pending_not_current(metadata: SecretMetadata) -> str | None:
    return unfinished_rotation(metadata.versions)


def _versions(client: SecretsManagerClient, secret_id: str) -> dict[str, list[str]]:
    described = client.describe_secret(SecretId=secret_id)
    return {k: list(v) for k, v in described.get("VersionIdsToStages", {}).items()}


def register_stand_in_function(
    lambda_client: LambdaClient, iam_client: IAMClient, name: str = "keyturn-local-rotation"
) -> str:
    """Create (once) a placeholder function in moto's Lambda and return its ARN.

    moto's ``RotateSecret`` only accepts a function it knows. Its attempt to run it fails without
    Docker and is ignored; the steps are run in-process by :func:`rotate`.
    """
    try:
        return lambda_client.get_function(FunctionName=name)["Configuration"]["FunctionArn"]
    except lambda_client.exceptions.ResourceNotFoundException:
        pass
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    try:
        role = iam_client.get_role(RoleName=name)["Role"]["Arn"]
    except iam_client.exceptions.NoSuchEntityException:
        role = iam_client.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))[
            "Role"
        ]["Arn"]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("stand_in.py", "def handler(event, context):\n    return None\n")
    created = lambda_client.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="stand_in.handler",
        Code={"ZipFile": buf.getvalue()},
    )
    return created["FunctionArn"]
