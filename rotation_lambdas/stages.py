"""Version-stage bookkeeping: pure functions over a DescribeSecret response."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from keyturn_core.protocol import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    unfinished_rotation,
    version_with,
)

from .errors import StageError

# Our own staging label on a rotation's version, put there just before setSecret changes a
# password that a re-run could only confirm by a login: a re-run then tries AWSPENDING first, so
# it costs no failed login. finishSecret takes it off.
PASSWORD_SET = "KEYTURN_PASSWORD_SET"  # noqa: S105 - a label, not a password


@dataclass(frozen=True, slots=True)
class SecretMetadata:
    """What the engine needs from DescribeSecret."""

    arn: str
    rotation_enabled: bool
    versions: Mapping[str, Sequence[str]]
    tags: Mapping[str, str] = field(default_factory=dict)
    owning_service: str | None = None  # "rds" for a master secret RDS manages

    @classmethod
    def from_describe(cls, response: Mapping[str, Any]) -> SecretMetadata:
        """Build from a ``describe_secret`` response."""
        return cls(
            arn=str(response.get("ARN", "")),
            rotation_enabled=bool(response.get("RotationEnabled", False)),
            versions={k: tuple(v) for k, v in response.get("VersionIdsToStages", {}).items()},
            tags={str(t.get("Key")): str(t.get("Value", "")) for t in response.get("Tags", [])},
            owning_service=response.get("OwningService"),
        )

    def version_with(self, stage: str) -> str | None:
        """The version id holding ``stage``, if any."""
        return version_with(self.versions, stage)


class Decision(enum.Enum):
    """What a step should do, given the token's stages."""

    PROCEED = "proceed"
    ALREADY_CURRENT = "already-current"


def check_token(metadata: SecretMetadata, token: str) -> Decision:
    """Apply the protocol's guard: rotation enabled, token a version, and pending (or done).

    >>> m = SecretMetadata("arn", True, {"t1": ["AWSCURRENT"], "t2": ["AWSPENDING"]})
    >>> check_token(m, "t2"), check_token(m, "t1")
    (<Decision.PROCEED: 'proceed'>, <Decision.ALREADY_CURRENT: 'already-current'>)
    """
    if not metadata.rotation_enabled:
        raise StageError(
            "rotation is not enabled on the secret",
            hint="turn rotation on (RotateSecret or a RotationSchedule) before invoking it",
        )
    stages = metadata.versions.get(token)
    if stages is None:
        raise StageError("the ClientRequestToken is not a version of the secret")
    if AWSCURRENT in stages:
        return Decision.ALREADY_CURRENT
    if AWSPENDING not in stages:
        raise StageError(
            "the ClientRequestToken's version is not at AWSPENDING",
            hint="another rotation may have replaced this one; start a new rotation",
        )
    return Decision.PROCEED


__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "PASSWORD_SET",
    "Decision",
    "SecretMetadata",
    "check_token",
    "unfinished_rotation",
]
