"""MySQL-family statement building: pure, unit-tested without a server.

The statement that changes a password depends on the server version (see
:func:`own_password_statement`); MySQL 8 statements are covered here by unit tests because no
MySQL 8 server is available to our test machines.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from ..errors import ConfigurationError

_VERSION = re.compile(r"(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True, slots=True, order=True)
class ServerVersion:
    """A MySQL-family server version, parsed from ``SELECT VERSION()``.

    >>> ServerVersion.parse("10.11.6-MariaDB-0+deb12u1")
    ServerVersion(mariadb=True, major=10, minor=11, patch=6)
    >>> ServerVersion.parse("8.0.36")
    ServerVersion(mariadb=False, major=8, minor=0, patch=36)
    """

    mariadb: bool
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: str) -> ServerVersion:
        """Parse a version string; raise :class:`ConfigurationError` if it is not one."""
        mariadb = "mariadb" in text.lower()
        # MariaDB's handshake prefixes "5.5.5-" for old replication clients.
        if mariadb and text.startswith("5.5.5-"):
            text = text[len("5.5.5-") :]
        match = _VERSION.match(text.strip())
        if match is None:
            raise ConfigurationError("the server's VERSION() is not a recognisable version")
        major, minor, patch = (int(g) if g else 0 for g in match.groups())
        return cls(mariadb=mariadb, major=major, minor=minor, patch=patch)

    @property
    def triple(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def has_dynamic_privileges(self) -> bool:
        """MySQL 8 and later: privileges outside the static list carry their own grant option."""
        return not self.mariadb and self.major >= 8


def session_sql_mode(version: ServerVersion) -> str:
    """The sql_mode every Keyturn session sets, whatever the server's default.

    The server's own sql_mode changes how ``SHOW GRANTS`` quotes names (``ANSI_QUOTES``) and how
    strings are escaped (``NO_BACKSLASH_ESCAPES``), so it is never trusted. ``NO_AUTO_CREATE_USER``
    (gone in MySQL 8, where GRANT never creates users) keeps a GRANT from creating an account.

    >>> session_sql_mode(ServerVersion.parse("10.11.6-MariaDB")), session_sql_mode(
    ...     ServerVersion.parse("8.0.36"))
    ('NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION', 'NO_ENGINE_SUBSTITUTION')
    """
    if version.mariadb or version.major < 8:
        return "NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION"
    return "NO_ENGINE_SUBSTITUTION"


@dataclass(frozen=True, slots=True)
class Statement:
    """SQL text with its bound parameters; ``repr`` hides the parameters (they are secrets)."""

    sql: str
    params: tuple[str, ...] = field(default=(), repr=False)


def native_password_hash(password: str) -> str:
    """The ``mysql_native_password`` hash: ``*`` + upper hex of SHA1(SHA1(password))."""
    inner = hashlib.sha1(password.encode("utf-8")).digest()  # noqa: S324 - the protocol's hash
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def own_password_statement(
    version: ServerVersion, new_password: str, login_password: str
) -> Statement:
    """The statement a logged-in user runs to change its own password on ``version``.

    - MariaDB (any): ``SET PASSWORD = '<native hash>'`` - the only self-service form that needs no
      CREATE USER privilege, and it keeps the password off the wire.
    - MySQL before 5.7.6: ``SET PASSWORD = PASSWORD(?)``.
    - MySQL 5.7.6 to 8.0.12: ``ALTER USER CURRENT_USER() IDENTIFIED BY ?``.
    - MySQL 8.0.13 and later: the same with ``REPLACE ?`` (the current password), so accounts with
      ``PASSWORD REQUIRE CURRENT`` rotate too.
    """
    if version.mariadb:
        return Statement("SET PASSWORD = %s", (native_password_hash(new_password),))
    if version.triple < (5, 7, 6):
        return Statement("SET PASSWORD = PASSWORD(%s)", (new_password,))
    if version.triple < (8, 0, 13):
        return Statement("ALTER USER CURRENT_USER() IDENTIFIED BY %s", (new_password,))
    return Statement(
        "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (new_password, login_password)
    )
