"""The Secrets Manager calls a rotation makes, with errors translated into our hierarchy."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ConnectTimeoutError

from .errors import NetworkError, PrivilegeError, SecretFormatError, SecretsManagerError
from .settings import PasswordPolicy
from .stages import AWSCURRENT, AWSPENDING, SecretMetadata

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

_NOT_FOUND = ("ResourceNotFoundException",)
_DENIED = ("AccessDeniedException", "AccessDenied", "KMSAccessDeniedException")


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
            with _translated("GetSecretValue"):
                response = self.client.get_secret_value(**kwargs)
        except _Missing:
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


class _Missing(Exception):
    """Internal: the requested version or stage does not exist."""


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn botocore failures of one call into our errors, naming the call (never a value)."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in _NOT_FOUND and operation == "GetSecretValue":
            raise _Missing() from None
        if code in _DENIED:
            raise PrivilegeError(
                f"Secrets Manager denied {operation} ({code})",
                hint="check the function role's policy and the secret's KMS key policy",
            ) from exc
        raise SecretsManagerError(f"Secrets Manager {operation} failed ({code})") from exc
    except (ConnectionError, ConnectTimeoutError) as exc:
        raise NetworkError(
            f"Secrets Manager could not be reached for {operation}",
            hint="inside a VPC, the function needs a Secrets Manager VPC endpoint or a NAT "
            "gateway; set the endpoint override when using a private endpoint",
        ) from exc
    except BotoCoreError as exc:
        raise SecretsManagerError(
            f"Secrets Manager {operation} failed ({type(exc).__name__})"
        ) from exc
