"""Keyturn rotation functions for AWS Secrets Manager.

The path from an event to the database: :mod:`.handlers` (Lambda entry points) ->
:class:`RotationEngine` (the four-step protocol) -> a strategy (:class:`SingleUserStrategy` or
:class:`AlternatingUsersStrategy`) -> a database adapter (``adapters.postgres``,
``adapters.mysql``; imported on demand so a function carries only its own driver).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .engine import RotationEngine
from .errors import (
    AccountLockedError,
    AuthenticationError,
    ConfigurationError,
    EventError,
    NetworkError,
    PrivilegeError,
    ProtocolError,
    RdsError,
    RotationError,
    SecretFormatError,
    SecretsManagerError,
    StageError,
    TlsError,
)
from .event import RotationEvent, Step
from .secret import DatabaseSecret, EngineFamily, TlsMode
from .secrets_store import SecretsStore
from .settings import ConnectSettings, PasswordPolicy
from .stages import AWSCURRENT, AWSPENDING, AWSPREVIOUS, SecretMetadata
from .strategies import (
    AlternatingUsersStrategy,
    ParityError,
    SingleUserStrategy,
    StepContext,
    Strategy,
)

if TYPE_CHECKING:
    from .rds import RdsLocator


def __getattr__(name: str) -> Any:
    # Imported on first use: most functions never ask RDS, and a cold start should not pay for it.
    if name == "RdsLocator":
        from .rds import RdsLocator

        return RdsLocator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "AccountLockedError",
    "AlternatingUsersStrategy",
    "AuthenticationError",
    "ConfigurationError",
    "ConnectSettings",
    "DatabaseSecret",
    "EngineFamily",
    "EventError",
    "NetworkError",
    "ParityError",
    "PasswordPolicy",
    "PrivilegeError",
    "ProtocolError",
    "RdsError",
    "RdsLocator",
    "RotationEngine",
    "RotationError",
    "RotationEvent",
    "SecretFormatError",
    "SecretMetadata",
    "SecretsManagerError",
    "SecretsStore",
    "SingleUserStrategy",
    "StageError",
    "Step",
    "StepContext",
    "Strategy",
    "TlsError",
    "TlsMode",
]
