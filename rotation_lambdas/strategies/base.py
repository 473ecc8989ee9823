"""What a rotation strategy plugs into the engine."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger

from keyturn_core.protocol import StrategyName

__all__ = ["Login", "StepContext", "Strategy", "StrategyName"]

from ..adapters.base import DatabaseAdapter
from ..errors import AuthenticationError, ConfigurationError
from ..secret import DatabaseSecret


@dataclass(frozen=True, slots=True)
class Login:
    """A secret version used to log in, and its stage for messages."""

    label: str
    secret: DatabaseSecret


@dataclass(frozen=True, slots=True)
class StepContext:
    """What a strategy may use during a step besides the two secrets."""

    logger: Logger
    load_stage: Callable[[str], DatabaseSecret | None]
    """Load and validate the secret at a version stage (e.g. AWSPREVIOUS), or None if absent."""
    load_secret: Callable[[str, str], DatabaseSecret]
    """Load and validate another secret's AWSCURRENT by ARN; the second argument labels errors."""
    secret_arn: str
    """The ARN of the secret being rotated."""
    labels: frozenset[str] = frozenset()
    """The token's version's staging labels, as DescribeSecret gave them when the step began."""
    set_label: Callable[[str, bool], None] = lambda label, on: None
    """Put (``True``) or take off (``False``) a staging label of the token's version."""


class Strategy[ConnT](abc.ABC):
    """One way of rotating: the engine owns the protocol, the strategy the database work."""

    name: StrategyName
    proof_steps: tuple[str, ...] = ()
    """The names of the proofs setSecret makes, in order (``keyturn preflight`` lists them)."""

    def __init__(self, adapter: DatabaseAdapter[ConnT]) -> None:
        self.adapter = adapter

    @abc.abstractmethod
    def pending_secret(self, current: DatabaseSecret, new_password: str) -> DatabaseSecret:
        """The AWSPENDING value createSecret stores."""

    def check_pair(self, current: DatabaseSecret, pending: DatabaseSecret) -> None:
        """Refuse a pending value that names another server or user than the current one."""
        differing = current.account_differences(pending)
        if differing:
            keys = ", ".join(f"'{k}'" for k in differing)
            raise ConfigurationError(
                f"the AWSPENDING and AWSCURRENT versions differ in {keys}; refusing to touch the "
                "database",
                hint="cancel this rotation (remove AWSPENDING) and fix the secret",
            )

    @abc.abstractmethod
    def set_secret(
        self, ctx: StepContext, current: DatabaseSecret, pending: DatabaseSecret
    ) -> None:
        """Make the database accept the pending credentials. Must be idempotent."""

    def test_secret(self, ctx: StepContext, pending: DatabaseSecret) -> None:
        """Log in with the pending credentials and run the probe query."""
        conn = self.open_pending(pending)
        try:
            self.adapter.probe(conn)
        finally:
            self.adapter.close(conn)

    def open_pending(self, pending: DatabaseSecret) -> ConnT:
        """Log in with AWSPENDING; a refusal means setSecret did not take effect."""
        self.adapter.check_username(pending.username)
        try:
            return self.adapter.open(pending)
        except AuthenticationError as exc:
            raise AuthenticationError(
                f"the AWSPENDING credentials for user '{pending.username}' do not log in to "
                f"{pending.endpoint}",
                hint="setSecret did not take effect; re-run the rotation",
            ) from exc

    def describe(self) -> dict[str, Any]:
        """Names for logs and metrics."""
        return {"strategy": self.name, "engine_family": self.adapter.family.value}
