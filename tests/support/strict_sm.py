"""A Secrets Manager client that enforces the AWS rules moto does not.

moto accepts PutSecretValue with an existing version id and a different value (AWS rejects it) and
a RotateSecret while another rotation's AWSPENDING version is not yet AWSCURRENT (AWS rejects it).
Tests run against this wrapper so nothing passes only because of the mock's leniency.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


def _reject(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


class StrictSecretsManager:
    """Wraps a boto3 Secrets Manager client; counts every call by operation name."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr) or name.startswith("_") or name in ("exceptions", "meta"):
            return attr

        def call(**kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            return attr(**kwargs)

        return call

    @property
    def sm(self) -> SecretsManagerClient:
        """This wrapper, typed as the client it stands in for."""
        return cast("SecretsManagerClient", self)

    def count(self, operation: str) -> int:
        return sum(1 for name, _ in self.calls if name == operation)

    def put_secret_value(self, **kwargs: Any) -> Any:
        self.calls.append(("put_secret_value", kwargs))
        token = kwargs.get("ClientRequestToken")
        if token is not None:
            try:
                existing = self._client.get_secret_value(
                    SecretId=kwargs["SecretId"], VersionId=token
                )
            except self._client.exceptions.ResourceNotFoundException:
                existing = None
            if existing is not None and existing.get("SecretString") != kwargs.get("SecretString"):
                raise _reject(
                    "PutSecretValue",
                    "ResourceExistsException",
                    "A resource with the ID you requested already exists.",
                )
        return self._client.put_secret_value(**kwargs)

    def rotate_secret(self, **kwargs: Any) -> Any:
        self.calls.append(("rotate_secret", kwargs))
        described = self._client.describe_secret(SecretId=kwargs["SecretId"])
        for stages in described.get("VersionIdsToStages", {}).values():
            if "AWSPENDING" in stages and "AWSCURRENT" not in stages:
                raise _reject(
                    "RotateSecret",
                    "InvalidRequestException",
                    "A previous rotation isn't complete. That rotation will be reattempted.",
                )
        return self._client.rotate_secret(**kwargs)


class InjectedFault(ConnectionError):
    """A failure injected by a test; the engine sees it as an unexpected error."""


class FaultyClient(StrictSecretsManager):
    """Fails the ``nth`` call of ``operation`` once, ``before`` or ``after`` it takes effect."""

    def __init__(self, client: Any, operation: str, nth: int, when: str) -> None:
        super().__init__(client)
        self.operation, self.nth, self.when = operation, nth, when
        self.seen = 0
        self.fired = False

    def _maybe_fail(self, name: str, moment: str) -> None:
        due = self.seen == self.nth and moment == self.when
        if name == self.operation and due and not self.fired:
            self.fired = True
            raise InjectedFault(f"injected failure {moment} {name} #{self.nth}")

    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if name != self.operation:
            return attr
        return self._wrap(name, attr)

    def put_secret_value(self, **kwargs: Any) -> Any:
        return self._wrap("put_secret_value", super().put_secret_value)(**kwargs)

    def _wrap(self, name: str, call: Any) -> Any:
        def wrapped(**kwargs: Any) -> Any:
            self.seen += 1 if name == self.operation else 0
            self._maybe_fail(name, "before")
            try:
                result = call(**kwargs)
            except Exception:
                # The server answered with an error; "after" means the answer was lost instead.
                self._maybe_fail(name, "after")
                raise
            self._maybe_fail(name, "after")
            return result

        return wrapped
