"""AWS options as users of the AWS CLI expect them: --endpoint-url, --region, --profile."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

import boto3
from botocore.exceptions import ProfileNotFound


class CliError(Exception):
    """A problem the user can fix; printed as one line, without a traceback."""


@dataclass(frozen=True, slots=True)
class AwsOptions:
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> AwsOptions:
        return cls(args.endpoint_url, args.region, args.profile)

    def session(self) -> boto3.Session:
        try:
            session = boto3.Session(profile_name=self.profile, region_name=self.region)
        except ProfileNotFound as exc:
            raise CliError(
                f"the AWS profile '{self.profile}' is not in your AWS config or credentials file"
            ) from exc
        if session.region_name is None:
            raise CliError(
                "no AWS region: pass --region, set AWS_REGION (or AWS_DEFAULT_REGION), or set a "
                "region in the profile"
            )
        return session

    def client(self, service: str) -> Any:
        factory: Any = self.session().client  # typed per service name; ours is a variable
        return factory(service, endpoint_url=self.endpoint_url)

    def export(self) -> None:
        """Make this process's other boto3 clients (the handlers' own) use the same settings."""
        region = self.session().region_name
        os.environ["AWS_DEFAULT_REGION"] = region
        if self.profile:
            os.environ["AWS_PROFILE"] = self.profile
        if self.endpoint_url:
            for service in ("SECRETS_MANAGER", "LAMBDA", "IAM", "RDS"):
                os.environ[f"AWS_ENDPOINT_URL_{service}"] = self.endpoint_url


def add_aws_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("AWS")
    group.add_argument("--endpoint-url", help="Secrets Manager endpoint (e.g. a moto server)")
    group.add_argument("--region", help="AWS region (default: the profile's, or $AWS_REGION)")
    group.add_argument("--profile", help="AWS profile name (default: $AWS_PROFILE)")
