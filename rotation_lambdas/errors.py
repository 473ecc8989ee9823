"""One error hierarchy for the rotation functions.

Every error says what is at fault (the key, the step, the host) and never carries a secret value:
messages are built only from key names, step names, host names, usernames and engine names.
Callers catch a category (configuration, network, TLS, authentication, privilege, protocol) or the
base class :class:`RotationError`.
"""

from __future__ import annotations

import keyturn_core


class RotationError(Exception):
    """Base class of every error raised by the rotation functions.

    ``hint`` is a one-line suggestion for the operator; ``step`` is set by the engine when the error
    escapes a rotation step.
    """

    category = "rotation"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.step: str | None = None

    def __str__(self) -> str:
        prefix = f"{self.step}: " if self.step else ""
        suffix = f" (hint: {self.hint})" if self.hint else ""
        return f"{prefix}{self.message}{suffix}"


class ConfigurationError(RotationError):
    """The function's settings, the secret's content or the function/secret pairing is wrong."""

    category = "configuration"


class SecretFormatError(ConfigurationError, keyturn_core.SecretFormatError):
    """A secret value is not valid rotation JSON; the message names the key at fault."""


class ProtocolError(RotationError):
    """The rotation protocol was not followed: bad event, wrong stage, rotation disabled."""

    category = "protocol"


class EventError(ProtocolError):
    """The Lambda event is malformed."""


class StageError(ProtocolError):
    """The secret's version stages do not allow this step."""


class SecretsManagerError(RotationError):
    """A Secrets Manager call failed for a reason other than a missing value."""

    category = "secretsmanager"


class RdsError(RotationError):
    """An RDS API call failed, or named no endpoint for an RDS-managed secret."""

    category = "rds"


class NetworkError(RotationError):
    """A database or Secrets Manager endpoint could not be reached (refused, timed out)."""

    category = "network"


class TlsError(RotationError):
    """TLS could not be established or verified. Never followed by a plaintext attempt."""

    category = "tls"


class AuthenticationError(RotationError):
    """The database refused the credentials."""

    category = "authentication"


class AccountLockedError(RotationError):
    """The account may not log in now (locked, blocked after failed logins, NOLOGIN): no
    password will do, so no other version is tried."""

    category = "authentication"


class PrivilegeError(RotationError):
    """The credentials log in but lack a privilege the rotation needs."""

    category = "privilege"


__all__ = [
    "AccountLockedError",
    "AuthenticationError",
    "ConfigurationError",
    "EventError",
    "NetworkError",
    "PrivilegeError",
    "ProtocolError",
    "RdsError",
    "RotationError",
    "SecretFormatError",
    "SecretsManagerError",
    "StageError",
    "TlsError",
]
