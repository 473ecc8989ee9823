"""The ``keyturn`` command: preflight, status, rotate, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
)

from rotation_lambdas.errors import RotationError
from rotation_lambdas.handlers import ALTERNATING_USERS, HANDLERS, SINGLE_USER
from rotation_lambdas.rds import client_config
from rotation_lambdas.settings import ConnectSettings

from .aws import AwsOptions, CliError, add_aws_options
from .output import table
from .preflight import FAIL, Preflight
from .rotate import rotate_by_service, rotate_here
from .status import OFF, OK, collect


def cmd_preflight(args: argparse.Namespace) -> int:
    options = AwsOptions.from_args(args)
    settings = ConnectSettings.from_env()
    preflight = Preflight(
        options.client("secretsmanager"),
        args.secret_id,
        strategy=args.strategy,
        settings=settings,
        superuser_secret_id=args.superuser_secret,
        # The profile's credentials and region; the endpoint is RDS's own (AWS_ENDPOINT_URL_RDS
        # overrides it), not --endpoint-url, which names Secrets Manager's.
        rds_client_factory=lambda: options.session().client("rds", config=client_config()),
    )
    checks = preflight.run()
    if args.json:
        print(json.dumps({"ok": preflight.ok, "checks": [c.as_dict() for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{check.status.upper():<5} {check.name:<18} {check.reason}")
            if check.hint and check.status != "pass":
                print(f"{'':<24} fix: {check.hint}")
        failed = sum(c.status == FAIL for c in checks)
        print("ready to rotate" if preflight.ok else f"{failed} check(s) failed")
    return 0 if preflight.ok else 1


def cmd_status(args: argparse.Namespace) -> int:
    statuses = collect(AwsOptions.from_args(args).client("secretsmanager"))
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses], indent=2))
    else:
        rows = [
            [
                s.name,
                "on" if s.rotation_enabled else "off",
                s.function or "-",
                f"{s.last_rotated:%Y-%m-%d}" if s.last_rotated else "never",
                f"{s.next_rotation:%Y-%m-%d}" if s.next_rotation else "-",
                s.state + (f": {s.detail}" if s.state not in (OK, OFF) else ""),
            ]
            for s in statuses
        ]
        print(table(["SECRET", "ROTATION", "FUNCTION", "LAST", "NEXT", "STATE"], rows))
        print(
            f"{len(statuses)} secret(s); {sum(s.state not in (OK, OFF) for s in statuses)} "
            "need attention"
        )
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    options = AwsOptions.from_args(args)
    if args.function:
        return rotate_here(
            options,
            args.secret_id,
            args.function,
            lambda_arn=args.lambda_arn,
            register_stand_in=args.register_stand_in,
            resume=args.resume,
            max_attempts=args.max_attempts,
        )
    return rotate_by_service(options.client("secretsmanager"), args.secret_id, wait=args.wait)


def cmd_demo(args: argparse.Namespace) -> int:
    from keyturn_local.demo import run_demo

    return run_demo(
        engines=args.engine, rotations=args.rotations, short=args.short, verbose=args.verbose
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(
        prog="keyturn", description="Database credential rotation for AWS Secrets Manager."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    pre = sub.add_parser("preflight", help="check that a secret can be rotated, changing nothing")
    pre.add_argument("secret_id")
    pre.add_argument(
        "--strategy",
        choices=[SINGLE_USER, ALTERNATING_USERS],
        help="default: alternating_users when the secret has 'masterarn', else single_user",
    )
    pre.add_argument("--superuser-secret", help="superuser secret ARN when 'masterarn' is absent")
    pre.add_argument("--json", action="store_true", help="machine-readable output")
    add_aws_options(pre)
    pre.set_defaults(func=cmd_preflight)

    status = sub.add_parser("status", help="rotation health of every secret in the region")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    add_aws_options(status)
    status.set_defaults(func=cmd_status)

    rot = sub.add_parser("rotate", help="rotate a secret now and follow it to the end")
    rot.add_argument("secret_id")
    rot.add_argument(
        "--function",
        choices=sorted(HANDLERS),
        help="run this rotation function's handler here (the local driver) instead of asking "
        "Secrets Manager",
    )
    rot.add_argument("--wait", type=float, default=300.0, help="seconds to follow (service mode)")
    rot.add_argument("--lambda-arn", help="with --function: the function ARN to record")
    rot.add_argument(
        "--register-stand-in",
        action="store_true",
        help="with --function: create a placeholder function in moto's Lambda, use its ARN",
    )
    rot.add_argument("--resume", action="store_true", help="re-drive a rotation in progress")
    rot.add_argument("--max-attempts", type=int, default=3)
    add_aws_options(rot)
    rot.set_defaults(func=cmd_rotate)

    demo = sub.add_parser(
        "demo", help="all four rotation functions and an application under load, on this machine"
    )
    demo.add_argument("--engine", action="append", choices=["postgres", "mariadb"])
    demo.add_argument("--rotations", type=int, default=3, help="per function (default 3)")
    demo.add_argument("--short", action="store_true", help="one rotation per function, less load")
    demo.add_argument("--verbose", action="store_true", help="show the functions' JSON logs")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``keyturn`` console script."""
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except (CliError, RotationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except NoCredentialsError:
        print(
            "error: no AWS credentials: pass --profile, set AWS_PROFILE, or set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
            file=sys.stderr,
        )
        return 2
    except NoRegionError:
        print("error: no AWS region: pass --region or set AWS_REGION", file=sys.stderr)
        return 2
    except EndpointConnectionError as exc:
        print(
            f"error: cannot reach {exc.kwargs.get('endpoint_url', 'the endpoint')}", file=sys.stderr
        )
        return 2
    except ClientError as exc:
        error = exc.response.get("Error", {})
        print(
            f"error: {exc.operation_name}: {error.get('Code')}: {error.get('Message')}",
            file=sys.stderr,
        )
        return 2
    return result


if __name__ == "__main__":
    sys.exit(main())
