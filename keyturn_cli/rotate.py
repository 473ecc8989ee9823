"""``keyturn rotate SECRET_ID``: drive a rotation here, or ask Secrets Manager and follow it.

With ``--function``, this process runs the rotation function's handler for each step (the local
driver), against whatever endpoint is configured: a moto server, or a real account when you want
to rotate from your machine. Without it, Secrets Manager is asked to rotate with the function
configured on the secret, and the version stages are followed until the new version is
AWSCURRENT, or the wait runs out.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from keyturn_local.driver import RotationFailed, register_stand_in_function, rotate
from rotation_lambdas.handlers import HANDLERS

from .aws import AwsOptions, CliError
from .output import print_step, print_versions


def rotate_here(
    options: AwsOptions,
    secret_id: str,
    function: str,
    *,
    lambda_arn: str | None,
    register_stand_in: bool,
    resume: bool,
    max_attempts: int,
) -> int:
    options.export()  # the handler's own boto3 client must see the same endpoint and region
    client = options.client("secretsmanager")
    if register_stand_in:
        lambda_arn = register_stand_in_function(options.client("lambda"), options.client("iam"))
    print(f"rotating {secret_id} with {function}, in this process")
    try:
        report = rotate(
            client,
            secret_id,
            HANDLERS[function],
            lambda_arn=lambda_arn,
            resume=resume,
            max_attempts=max_attempts,
            on_step=print_step,
        )
    except RotationFailed as exc:
        print_versions("versions after", exc.report.after)
        raise CliError(str(exc)) from exc
    print_versions("versions before", report.before)
    print_versions("versions after", report.after)
    print(f"rotation {report.token} succeeded in {report.attempts} attempt(s)")
    return 0


def rotate_by_service(
    client: Any,
    secret_id: str,
    *,
    wait: float,
    poll: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Ask Secrets Manager to rotate now; print each change of the new version's stages."""
    described = client.describe_secret(SecretId=secret_id)
    function = described.get("RotationLambdaARN")
    if not function:
        raise CliError(
            f"secret '{secret_id}' has no rotation function: configure rotation on it, or pass "
            "--function to drive the rotation from this machine"
        )
    poll = poll if poll is not None else min(2.0, max(0.2, wait / 20))
    token = str(uuid.uuid4())
    # Naming the configured function again changes nothing on AWS; moto would forget it.
    client.rotate_secret(SecretId=secret_id, ClientRequestToken=token, RotationLambdaARN=function)
    print(f"asked Secrets Manager to rotate {secret_id} with {function.rsplit(':', 1)[-1]}")
    started, seen = clock(), None
    while True:
        versions = client.describe_secret(SecretId=secret_id).get("VersionIdsToStages", {})
        stages = sorted(versions.get(token, []))
        elapsed = clock() - started
        if stages != seen:
            print(f"  {elapsed:6.1f} s  version {token}: {', '.join(stages) or '(no stage)'}")
            seen = stages
        if "AWSCURRENT" in stages:
            print(f"rotation {token} succeeded in {elapsed:.1f} s")
            return 0
        if elapsed >= wait:
            raise CliError(
                f"the rotation did not finish within {wait:g} s (version {token} is "
                f"{', '.join(stages) or 'unlabelled'}): read the rotation function's log group "
                f"/aws/lambda/{function.rsplit(':', 1)[-1]}, and `keyturn preflight {secret_id}`"
            )
        sleep(min(poll, max(0.0, wait - elapsed)))
