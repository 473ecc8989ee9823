"""The Secrets Manager calls a rotation makes, with errors translated into our hierarchy."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .aws_calls import MissingResource, translated
from .errors import SecretFormatError, SecretsManagerError
from .settings import PasswordPolicy
from .stages import AWSCURRENT, AWSPENDING, SecretMetadata

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_NOT_FOUND = ("ResourceNotFoundException",)


class SecretsStore:
    """Thin, typed access to the secret being rotated.

    ``client`` is a boto3 Secrets Manager client; inject one to point at moto or a VPC endpoint.
    """

    def __init__(self, client: SecretsManagerClient) -> None:
        self.client = client

    def describe(self, secret_id: str) -> SecretMetadata:
        """DescribeSecret, reduced to what the protocol needs."""
        with _translated("DescribeSecret"):
            return SecretMetadata.from_describe(self.client.describe_secret(SecretId=secret_id))

    def get_value(self, secret_id: str, *, stage: str, version_id: str | None = None) -> str | None:
        """The SecretString at ``stage`` (and ``version_id``), or ``None`` when there is none."""
        kwargs: dict[str, Any] = {"SecretId": secret_id, "VersionStage": stage}
        if version_id is not None:
            kwargs["VersionId"] = version_id
        try:
            with _translated("GetSecretValue", missing=_NOT_FOUND):
                response = self.client.get_secret_value(**kwargs)
        except MissingResource:
            return None
        if "SecretString" not in response:
            raise SecretFormatError(f"the {stage} version holds binary data, not a JSON string")
        return response["SecretString"]

    def random_password(self, policy: PasswordPolicy) -> str:
        """A new password from GetRandomPassword."""
        with _translated("GetRandomPassword"):
            return self.client.get_random_password(**policy.request())["RandomPassword"]

    def put_pending(
        self, secret_id: str, token: str, secret_string: str, rotation_token: str | None
    ) -> None:
        """PutSecretValue at AWSPENDING for ``token``."""
        kwargs: dict[str, Any] = {
            "SecretId": secret_id,
            "ClientRequestToken": token,
            "SecretString": secret_string,
            "VersionStages": [AWSPENDING],
        }
        if rotation_token is not None:
            kwargs["RotationToken"] = rotation_token
        with _translated("PutSecretValue"):
            self.client.put_secret_value(**kwargs)

    def make_current(self, secret_id: str, token: str, from_version: str | None) -> None:
        """Move AWSCURRENT to ``token``; the service then labels the old one AWSPREVIOUS."""
        kwargs: dict[str, Any] = {
            "SecretId": secret_id,
            "VersionStage": AWSCURRENT,
            "MoveToVersionId": token,
        }
        if from_version is not None:
            kwargs["RemoveFromVersionId"] = from_version
        with _translated("UpdateSecretVersionStage"):
            self.client.update_secret_version_stage(**kwargs)

    def label(self, secret_id: str, label: str, version_id: str, *, on: bool) -> None:
        """Put ``label`` on ``version_id`` (``on``), or take it off."""
        kwargs: dict[str, Any] = {"SecretId": secret_id, "VersionStage": label}
        kwargs["MoveToVersionId" if on else "RemoveFromVersionId"] = version_id
        with _translated("UpdateSecretVersionStage"):
            self.client.update_secret_version_stage(**kwargs)


def _translated(operation: str, *, missing: tuple[str, ...] = ()) -> AbstractContextManager[None]:
    return translated(
        "Secrets Manager",
        operation,
        error=SecretsManagerError,
        denied_hint="check the function role's policy and the secret's KMS key policy",
        network_hint="inside a VPC, the function needs a Secrets Manager VPC endpoint or a NAT "
        "gateway; set the endpoint override when using a private endpoint",
        missing=missing,
    )
