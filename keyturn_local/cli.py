"""The ``keyturn`` command: ``keyturn demo`` and ``keyturn rotate``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import boto3

from rotation_lambdas.driver import RotationFailed, StepRecord, register_stand_in_function, rotate
from rotation_lambdas.errors import RotationError
from rotation_lambdas.handlers import HANDLERS

DEFAULT_REGION = "us-east-1"


def print_step(record: StepRecord) -> None:
    """One line per step invocation."""
    status = "ok" if record.error is None else f"FAILED: {record.error}"
    print(
        f"  attempt {record.attempt}  {record.step.value:<13} {record.seconds * 1000:7.1f} ms  "
        f"{status}",
        flush=True,
    )


def print_versions(title: str, versions: dict[str, list[str]]) -> None:
    """The secret's versions and their stages, one per line."""
    print(f"  {title}:")
    for version_id, stages in sorted(versions.items(), key=lambda kv: sorted(kv[1])):
        print(f"    {version_id}  {', '.join(sorted(stages)) or '(no stage)'}")


def use_endpoint(endpoint_url: str | None, region: str | None) -> None:
    """Point this process's boto3 clients, the handlers' included, at ``endpoint_url``."""
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = endpoint_url
        os.environ["AWS_ENDPOINT_URL_LAMBDA"] = endpoint_url
        os.environ["AWS_ENDPOINT_URL_IAM"] = endpoint_url
    if region:
        os.environ["AWS_DEFAULT_REGION"] = region
    os.environ.setdefault("AWS_DEFAULT_REGION", DEFAULT_REGION)


def cmd_rotate(args: argparse.Namespace) -> int:
    """Drive one rotation through a handler in this process."""
    use_endpoint(args.endpoint_url, args.region)
    client = boto3.client("secretsmanager")
    lambda_arn = args.lambda_arn
    if args.register_stand_in:
        lambda_arn = register_stand_in_function(boto3.client("lambda"), boto3.client("iam"))
    print(f"rotating {args.secret_id} with {args.function}")
    try:
        report = rotate(
            client,
            args.secret_id,
            HANDLERS[args.function],
            lambda_arn=lambda_arn,
            resume=args.resume,
            max_attempts=args.max_attempts,
            on_step=print_step,
        )
    except RotationFailed as exc:
        print_versions("versions after", exc.report.after)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except RotationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print_versions("versions before", report.before)
    print_versions("versions after", report.after)
    print(f"rotation {report.token} succeeded in {report.attempts} attempt(s)")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Start local servers and rotate a secret for each engine."""
    from .demo import run_demo

    return run_demo(engines=args.engine, verbose=args.verbose)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="keyturn", description="Database credential rotation for AWS Secrets Manager."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="rotate PostgreSQL and MariaDB passwords on this machine, end to end"
    )
    demo.add_argument(
        "--engine",
        action="append",
        choices=["postgres", "mariadb"],
        help="only this engine (repeatable; default: both)",
    )
    demo.add_argument(
        "--verbose", action="store_true", help="also show the rotation function's JSON log lines"
    )
    demo.set_defaults(func=cmd_demo)

    rot = sub.add_parser(
        "rotate", help="drive one rotation against a Secrets Manager endpoint (moto) in-process"
    )
    rot.add_argument("secret_id")
    rot.add_argument("--function", required=True, choices=sorted(HANDLERS))
    rot.add_argument("--endpoint-url", help="Secrets Manager endpoint, e.g. a moto server")
    rot.add_argument(
        "--region", help=f"AWS region (default: $AWS_DEFAULT_REGION or {DEFAULT_REGION})"
    )
    rot.add_argument("--lambda-arn", help="rotation function ARN to record on the secret")
    rot.add_argument(
        "--register-stand-in",
        action="store_true",
        help="create a placeholder function in moto's Lambda and use its ARN",
    )
    rot.add_argument(
        "--resume", action="store_true", help="re-drive a rotation that is already in progress"
    )
    rot.add_argument("--max-attempts", type=int, default=3)
    rot.set_defaults(func=cmd_rotate)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``keyturn`` console script."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
