"""The database secret: rotation-format JSON parsed and validated, for the rotation functions and
the client library alike (one format, one parser; standard library only).

Validation errors name the key at fault and never echo a value. The parsed object keeps every key
of the original JSON so a new version written by the rotation preserves what the rotation does not
own (``dbClusterIdentifier``, ``masterarn``, application keys).

A secret RDS manages for a master user (``ManageMasterUserPassword``) holds only ``username`` and
``password``: ``defaults`` supplies what the secret lacks (the engine a driver implies, the host
the application knows).
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, ClassVar, Self

from .errors import SecretFormatError

MAX_SECRET_CHARS = 65536  # Secrets Manager's own limit on SecretString


class EngineFamily(enum.StrEnum):
    """The database families a rotation function handles."""

    POSTGRESQL = "postgresql"
    MYSQL = "mysql"


class TlsMode(enum.StrEnum):
    """How a connection uses TLS. Only ``disable`` ever allows plaintext.

    Modes are ordered by what they protect against:

    >>> TlsMode.VERIFY_CA.at_least(TlsMode.REQUIRE), TlsMode.REQUIRE.at_least(TlsMode.VERIFY_CA)
    (True, False)
    """

    DISABLE = "disable"
    REQUIRE = "require"
    VERIFY_CA = "verify-ca"
    VERIFY_FULL = "verify-full"

    def at_least(self, floor: TlsMode) -> bool:
        """Whether this mode is as strong as ``floor`` or stronger."""
        order = list(TlsMode)
        return order.index(self) >= order.index(floor)


# Engine names as Secrets Manager, RDS and the official templates write them.
ENGINE_FAMILIES: Mapping[str, EngineFamily] = MappingProxyType(
    {
        "postgres": EngineFamily.POSTGRESQL,
        "postgresql": EngineFamily.POSTGRESQL,
        "aurora-postgresql": EngineFamily.POSTGRESQL,
        "mysql": EngineFamily.MYSQL,
        "mariadb": EngineFamily.MYSQL,
        "aurora-mysql": EngineFamily.MYSQL,
        "aurora": EngineFamily.MYSQL,  # Aurora MySQL 5.6, the engine name RDS still reports
    }
)

DEFAULT_PORTS: Mapping[EngineFamily, int] = MappingProxyType(
    {EngineFamily.POSTGRESQL: 5432, EngineFamily.MYSQL: 3306}
)

_MAX_HOST = 255
_MAX_NAME = 128


@dataclass(frozen=True, slots=True)
class DatabaseSecret:
    """A validated rotation secret. ``repr`` and ``str`` never show the password.

    >>> s = DatabaseSecret.parse(
    ...     '{"engine": "postgres", "host": "db", "username": "app", "password": "pw"}')
    >>> (s.family, s.port, s.dbname)
    (<EngineFamily.POSTGRESQL: 'postgresql'>, 5432, 'postgres')
    >>> "pw" in repr(s)
    False
    """

    engine: str
    family: EngineFamily
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str | None
    tls_mode: TlsMode | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    format_error: ClassVar[type[Exception]] = SecretFormatError
    """What validation raises: a subclass of :class:`SecretFormatError` in each package."""

    @classmethod
    def parse(
        cls, text: str, *, label: str = "secret", defaults: Mapping[str, Any] | None = None
    ) -> Self:
        """Parse a SecretString. ``label`` names the version in errors (e.g. ``AWSPENDING``)."""
        if len(text) > MAX_SECRET_CHARS:
            raise cls.format_error(f"{label} is larger than {MAX_SECRET_CHARS} characters")
        try:
            data = json.loads(text)
        except (ValueError, RecursionError):
            # The decoder's message quotes the text around the error: never chain or show it.
            raise cls.format_error(f"{label} is not valid JSON") from None
        if not isinstance(data, dict):
            raise cls.format_error(f"{label} must be a JSON object")
        return cls.from_mapping(data, label=label, defaults=defaults)

    @classmethod
    def from_mapping(
        cls,
        data: Mapping[str, Any],
        *,
        label: str = "secret",
        defaults: Mapping[str, Any] | None = None,
    ) -> Self:
        """Validate an already-decoded secret.

        ``defaults`` fills keys the secret lacks (or holds as null): ``engine``, ``host``,
        ``port``, ``dbname``. ``raw`` keeps the secret's own keys only.
        """
        error = cls.format_error
        merged = {**(defaults or {}), **{k: v for k, v in data.items() if v is not None}}
        engine_name = _string(merged, "engine", label, error, max_len=_MAX_NAME).strip().lower()
        family = ENGINE_FAMILIES.get(engine_name)
        if family is None:
            allowed = ", ".join(sorted(ENGINE_FAMILIES))
            raise error(f"{label} key 'engine' must be one of {allowed}")
        host = _host(merged, label, error)
        username = _string(merged, "username", label, error, max_len=_MAX_NAME)
        password = data.get("password")
        if not isinstance(password, str) or not password:
            # An empty password would make libpq fall back to ~/.pgpass or PGPASSWORD.
            raise error(f"{label} key 'password' is missing or not a non-empty string")
        if "\x00" in password:
            raise error(f"{label} key 'password' contains a NUL character")
        port = _port(merged, label, error, DEFAULT_PORTS[family])
        dbname: str | None
        if merged.get("dbname") is None:
            dbname = "postgres" if family is EngineFamily.POSTGRESQL else None
        else:
            dbname = _string(merged, "dbname", label, error, max_len=_MAX_NAME)
        return cls(
            engine=engine_name,
            family=family,
            host=host,
            port=port,
            username=username,
            password=password,
            dbname=dbname,
            tls_mode=_tls_mode(data, label, error),
            raw=MappingProxyType(dict(data)),
        )

    def with_credentials(self, *, password: str, username: str | None = None) -> Self:
        """A copy with a new password (and username); every other key is kept."""
        raw = dict(self.raw)
        raw["password"] = password
        if username is not None:
            raw["username"] = username
        return replace(
            self,
            password=password,
            username=self.username if username is None else username,
            raw=MappingProxyType(raw),
        )

    def to_json(self) -> str:
        """The secret as SecretString JSON, every original key included."""
        return json.dumps(dict(self.raw), separators=(",", ":"))

    def account_differences(self, other: DatabaseSecret) -> list[str]:
        """The secret keys in which ``other`` names another account, server or TLS mode.

        >>> a = DatabaseSecret.parse('{"engine": "mysql", "host": "db", "username": "u", '
        ...     '"password": "p"}')
        >>> a.account_differences(a.with_credentials(password="q", username="v"))
        ['username']
        """
        fields = (
            ("engine", self.family, other.family),
            ("host", self.host, other.host),
            ("port", self.port, other.port),
            ("username", self.username, other.username),
            ("sslmode", self.tls_mode, other.tls_mode),
        )
        return [key for key, mine, theirs in fields if mine != theirs]

    def same_account(self, other: DatabaseSecret) -> bool:
        """Whether ``other`` names the same account on the same server, with the same TLS mode."""
        return not self.account_differences(other)

    @property
    def endpoint(self) -> str:
        """``host:port`` for messages (never includes credentials)."""
        return f"{self.host}:{self.port}"


type ErrorClass = type[Exception]


def _string(
    data: Mapping[str, Any], key: str, label: str, error: ErrorClass, *, max_len: int
) -> str:
    value = data.get(key)
    if value is None:
        raise error(f"{label} key '{key}' is missing")
    if not isinstance(value, str) or not value.strip():
        raise error(f"{label} key '{key}' must be a non-empty string")
    if len(value) > max_len:
        raise error(f"{label} key '{key}' is longer than {max_len} characters")
    if "\x00" in value:
        raise error(f"{label} key '{key}' contains a NUL character")
    return value


# libpq reads a host starting with "/" or "@" as a Unix socket (no TLS: the floor would not
# apply) and a comma as a list of hosts; none of these is a database server's name.
_NOT_IN_HOST = frozenset("/\\,@=;'\" \t\r\n")


def _host(data: Mapping[str, Any], label: str, error: ErrorClass) -> str:
    host = _string(data, "host", label, error, max_len=_MAX_HOST).strip()
    if set(host) & _NOT_IN_HOST:
        raise error(
            f"{label} key 'host' must be one host name or IP address (not a socket path or a list)"
        )
    return host


def _port(data: Mapping[str, Any], label: str, error: ErrorClass, default: int) -> int:
    value = data.get("port")
    if value is None:
        return default
    # JSON written by RDS holds an integer; hand-written secrets often hold a string.
    if isinstance(value, bool):
        port = -1
    elif isinstance(value, int):
        port = value
    elif isinstance(value, str) and re.fullmatch(r"[0-9]{1,5}", value.strip()):
        port = int(value.strip())  # ASCII digits only: "²" is a digit to str.isdigit()
    else:
        port = -1
    if not 1 <= port <= 65535:
        raise error(f"{label} key 'port' must be an integer from 1 to 65535")
    return port


def _tls_mode(data: Mapping[str, Any], label: str, error: ErrorClass) -> TlsMode | None:
    mode: TlsMode | None = None
    raw_mode = data.get("sslmode")
    if raw_mode is not None:
        try:
            mode = TlsMode(raw_mode.strip().lower() if isinstance(raw_mode, str) else raw_mode)
        except ValueError:
            allowed = ", ".join(m.value for m in TlsMode)
            raise error(f"{label} key 'sslmode' must be one of {allowed}") from None
    raw_ssl = data.get("ssl")
    if raw_ssl is None:
        return mode
    # The official templates read "ssl" as a boolean or its string form.
    if isinstance(raw_ssl, bool):
        ssl_on = raw_ssl
    elif isinstance(raw_ssl, str) and raw_ssl.strip().lower() in ("true", "false"):
        ssl_on = raw_ssl.strip().lower() == "true"
    else:
        raise error(f"{label} key 'ssl' must be true or false")
    from_ssl = TlsMode.VERIFY_FULL if ssl_on else TlsMode.DISABLE
    if mode is not None and (mode is TlsMode.DISABLE) != (from_ssl is TlsMode.DISABLE):
        raise error(f"{label} keys 'ssl' and 'sslmode' disagree")
    return mode or from_ssl
