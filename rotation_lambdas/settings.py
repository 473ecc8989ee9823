"""Function settings, resolved from environment variables with documented defaults.

Every knob is an environment variable named here as a constant, so the template, the docs and the
tests refer to one name. Invalid values raise :class:`ConfigurationError` naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .canonical_name import DEFAULT_SUFFIXES, parse_suffixes
from .errors import ConfigurationError
from .secret import TlsMode

ENV_PASSWORD_LENGTH = "KEYTURN_PASSWORD_LENGTH"  # noqa: S105 - a variable name
ENV_EXCLUDE_CHARACTERS = "KEYTURN_EXCLUDE_CHARACTERS"
ENV_EXCLUDE_NUMBERS = "KEYTURN_EXCLUDE_NUMBERS"
ENV_EXCLUDE_PUNCTUATION = "KEYTURN_EXCLUDE_PUNCTUATION"
ENV_EXCLUDE_UPPERCASE = "KEYTURN_EXCLUDE_UPPERCASE"
ENV_EXCLUDE_LOWERCASE = "KEYTURN_EXCLUDE_LOWERCASE"
ENV_INCLUDE_SPACE = "KEYTURN_INCLUDE_SPACE"
ENV_REQUIRE_EACH_INCLUDED_TYPE = "KEYTURN_REQUIRE_EACH_INCLUDED_TYPE"
ENV_TLS_MODE = "KEYTURN_TLS_MODE"
ENV_TLS_MIN_MODE = "KEYTURN_TLS_MIN_MODE"
ENV_TLS_CA_BUNDLE = "KEYTURN_TLS_CA_BUNDLE"
ENV_TLS_VERIFY_CANONICAL_NAME = "KEYTURN_TLS_VERIFY_CANONICAL_NAME"
ENV_TLS_CANONICAL_NAME_SUFFIXES = "KEYTURN_TLS_CANONICAL_NAME_SUFFIXES"
ENV_CONNECT_TIMEOUT = "KEYTURN_CONNECT_TIMEOUT"
ENV_SUPERUSER_SECRET_ARN = "KEYTURN_SUPERUSER_SECRET_ARN"  # noqa: S105 - a variable name
ENV_RDS_MANAGED_SUPERUSERS = "KEYTURN_RDS_MANAGED_SUPERUSERS"

DEFAULT_PASSWORD_LENGTH = 32
# Characters that break connection URLs (@ / : ? # % & + =), .pgpass (: \), shell and SQL quoting
# (' " ` $ ;) or JDBC property strings (, ; { }). What remains still gives about 190 bits at 32
# characters.
DEFAULT_EXCLUDE_CHARACTERS = "\"'`\\/@:;?#%&+=$!*()[]{}<>|^~,"
DEFAULT_TLS_MODE = TlsMode.VERIFY_FULL
# The weakest TLS mode a secret may ask for. A secret's writer must not be able to make the function
# send credentials (a new MySQL password crosses the wire) without verified TLS.
DEFAULT_TLS_MIN_MODE = TlsMode.VERIFY_FULL
DEFAULT_CONNECT_TIMEOUT = 5.0

_MIN_PASSWORD_LENGTH, _MAX_PASSWORD_LENGTH = 8, 4096
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    """The GetRandomPassword options used for new passwords."""

    length: int = DEFAULT_PASSWORD_LENGTH
    exclude_characters: str = DEFAULT_EXCLUDE_CHARACTERS
    exclude_numbers: bool = False
    exclude_punctuation: bool = False
    exclude_uppercase: bool = False
    exclude_lowercase: bool = False
    include_space: bool = False
    require_each_included_type: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> PasswordPolicy:
        """Read the policy from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        length = _int(env, ENV_PASSWORD_LENGTH, DEFAULT_PASSWORD_LENGTH)
        if not _MIN_PASSWORD_LENGTH <= length <= _MAX_PASSWORD_LENGTH:
            raise ConfigurationError(
                f"{ENV_PASSWORD_LENGTH} must be from {_MIN_PASSWORD_LENGTH} "
                f"to {_MAX_PASSWORD_LENGTH}"
            )
        policy = cls(
            length=length,
            exclude_characters=env.get(ENV_EXCLUDE_CHARACTERS, DEFAULT_EXCLUDE_CHARACTERS),
            exclude_numbers=_bool(env, ENV_EXCLUDE_NUMBERS, False),
            exclude_punctuation=_bool(env, ENV_EXCLUDE_PUNCTUATION, False),
            exclude_uppercase=_bool(env, ENV_EXCLUDE_UPPERCASE, False),
            exclude_lowercase=_bool(env, ENV_EXCLUDE_LOWERCASE, False),
            include_space=_bool(env, ENV_INCLUDE_SPACE, False),
            require_each_included_type=_bool(env, ENV_REQUIRE_EACH_INCLUDED_TYPE, True),
        )
        if all(
            (
                policy.exclude_numbers,
                policy.exclude_punctuation,
                policy.exclude_uppercase,
                policy.exclude_lowercase,
            )
        ):
            raise ConfigurationError("the password policy excludes every character type")
        return policy

    def request(self) -> dict[str, Any]:
        """Keyword arguments for ``GetRandomPassword``."""
        return {
            "PasswordLength": self.length,
            "ExcludeCharacters": self.exclude_characters,
            "ExcludeNumbers": self.exclude_numbers,
            "ExcludePunctuation": self.exclude_punctuation,
            "ExcludeUppercase": self.exclude_uppercase,
            "ExcludeLowercase": self.exclude_lowercase,
            "IncludeSpace": self.include_space,
            "RequireEachIncludedType": self.require_each_included_type,
        }


@dataclass(frozen=True, slots=True)
class ConnectSettings:
    """How the function connects to databases: TLS default and floor, CA bundle, timeout."""

    default_tls_mode: TlsMode = DEFAULT_TLS_MODE
    ca_bundle: str | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    min_tls_mode: TlsMode = DEFAULT_TLS_MIN_MODE
    # verify-full against a name on the host's CNAME chain (canonical_name.py), under these.
    verify_canonical_name: bool = False
    canonical_name_suffixes: tuple[str, ...] = DEFAULT_SUFFIXES

    def __post_init__(self) -> None:
        if not self.default_tls_mode.at_least(self.min_tls_mode):
            raise ConfigurationError(
                f"{ENV_TLS_MODE} '{self.default_tls_mode}' is weaker than {ENV_TLS_MIN_MODE} "
                f"'{self.min_tls_mode}'"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConnectSettings:
        """Read the settings from ``env`` (default: ``os.environ``)."""
        env = os.environ if env is None else env
        mode = _tls_mode(env, ENV_TLS_MODE, DEFAULT_TLS_MODE)
        floor = _tls_mode(env, ENV_TLS_MIN_MODE, DEFAULT_TLS_MIN_MODE)
        ca_bundle = resolve_ca_bundle(env.get(ENV_TLS_CA_BUNDLE, ""))
        timeout = _float(env, ENV_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT)
        if not 0.5 <= timeout <= 60:
            raise ConfigurationError(f"{ENV_CONNECT_TIMEOUT} must be from 0.5 to 60 seconds")
        return cls(
            default_tls_mode=mode,
            ca_bundle=ca_bundle,
            connect_timeout=timeout,
            min_tls_mode=floor,
            verify_canonical_name=_bool(env, ENV_TLS_VERIFY_CANONICAL_NAME, False),
            canonical_name_suffixes=parse_suffixes(
                env.get(ENV_TLS_CANONICAL_NAME_SUFFIXES, ",".join(DEFAULT_SUFFIXES)),
                ENV_TLS_CANONICAL_NAME_SUFFIXES,
            ),
        )


def rds_managed_superusers(env: Mapping[str, str] | None = None) -> bool:
    """``KEYTURN_RDS_MANAGED_SUPERUSERS``: whether a superuser secret that names no host is
    located through the RDS API (see :mod:`rotation_lambdas.rds`). Off by default."""
    return _bool(os.environ if env is None else env, ENV_RDS_MANAGED_SUPERUSERS, False)


# Where the build puts AWS's RDS CA bundle inside each artifact (see sam/build/Makefile).
ARTIFACT_ROOT = Path(__file__).resolve().parents[1]
SYSTEM_TRUST_STORE = "system"


def resolve_ca_bundle(value: str) -> str | None:
    """``KEYTURN_TLS_CA_BUNDLE``: empty or "system" for the runtime's trust store, an absolute
    path (a layer's file under /opt), or a relative one: from the working directory (Lambda's is
    the artifact's root, /var/task), else from the artifact's root (the template's default, the
    RDS bundle the build puts there)."""
    value = value.strip()
    if not value or value == SYSTEM_TRUST_STORE:
        return None
    path = Path(value)
    if not path.is_absolute() and not path.is_file():
        path = ARTIFACT_ROOT / value
    if not path.is_file():
        raise ConfigurationError(
            f"{ENV_TLS_CA_BUNDLE} names {path}, which does not exist (set it to a PEM file, or "
            f"'{SYSTEM_TRUST_STORE}' for the runtime's trust store)"
        )
    return str(path.absolute())


def _tls_mode(env: Mapping[str, str], name: str, default: TlsMode) -> TlsMode:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    try:
        return TlsMode(raw)
    except ValueError:
        allowed = ", ".join(m.value for m in TlsMode)
        raise ConfigurationError(f"{name} must be one of {allowed}") from None


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name} must be a number") from None


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(f"{name} must be true or false")
