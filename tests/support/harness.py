"""What every test world shares: a secret in moto, its rotation function, and the engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rotation_lambdas import RotationEngine

from .leaks import LeakWatch
from .strict_sm import StrictSecretsManager


@dataclass
class SecretHarness:
    client: StrictSecretsManager
    arn: str
    function_arn: str
    engine: RotationEngine
    leaks: LeakWatch

    def start_rotation(self, token: str) -> str:
        """What the service does before createSecret: an empty AWSPENDING version."""
        self.client.rotate_secret(
            SecretId=self.arn,
            ClientRequestToken=token,
            RotationLambdaARN=self.function_arn,
            RotationRules={"AutomaticallyAfterDays": 30},
        )
        return token

    def run(self, step: str, token: str, **extra: str) -> None:
        """Invoke one step the way the service does."""
        self.engine({"Step": step, "SecretId": self.arn, "ClientRequestToken": token, **extra})

    def versions(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = self.client.describe_secret(SecretId=self.arn)[
            "VersionIdsToStages"
        ]
        return out

    def watch_all_versions(self) -> None:
        """Register every stored password with the leak watch."""
        for version_id in self.versions():
            try:
                response: Any = self.client.get_secret_value(
                    SecretId=self.arn, VersionId=version_id
                )
            except self.client.exceptions.ResourceNotFoundException:
                continue
            self.leaks.add_secret_string(response["SecretString"])
