"""Database credentials read from a rotation-format secret, with the functions' own parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from keyturn_core.secret import DatabaseSecret

from .errors import ClientConfigurationError, SecretValueError


class Credentials(DatabaseSecret):
    """Connection credentials: :class:`keyturn_core.DatabaseSecret` as the client reads it.

    ``repr`` and ``str`` never show the password. A secret RDS manages for a master user holds
    only ``username`` and ``password``: ``defaults`` supplies the rest (the engine a driver
    implies, the host, port and database the application knows).

    >>> c = Credentials.from_secret_string(
    ...     '{"username": "app", "password": "s3cret"}', defaults={"engine": "mysql", "host": "db"})
    >>> (c.family.value, c.host, c.port, c.username, "s3cret" in repr(c))
    ('mysql', 'db', 3306, 'app', False)
    """

    __slots__ = ()
    format_error = SecretValueError

    @classmethod
    def from_secret_string(
        cls, text: str, *, defaults: dict[str, object] | None = None
    ) -> Credentials:
        """Parse rotation-format JSON; errors name the key at fault, never a value."""
        return cls.parse(text, label="the secret", defaults=defaults)


def refuse_secret_arguments(kwargs: Mapping[str, Any], secret_keys: Sequence[str]) -> None:
    """Refuse connection arguments only the secret may decide (the user and password)."""
    given = [key for key in secret_keys if key in kwargs]
    if given:
        raise ClientConfigurationError(
            f"{', '.join(given)} come from the secret: do not pass them to the connector"
        )


def server_of_arguments(
    kwargs: Mapping[str, Any], application_arguments: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> Callable[[Credentials, Mapping[str, Any]], tuple[str, object]]:
    """The server a connect reaches: the secret's host and port unless the arguments (the
    connector's, a pool's, the call's; read by the driver's ``application_arguments``) name
    others."""

    def target(creds: Credentials, overrides: Mapping[str, Any]) -> tuple[str, object]:
        given = application_arguments({**kwargs, **overrides})
        return str(given.get("host") or creds.host), given.get("port") or creds.port

    return target


def defaults_from_arguments(
    kwargs: Mapping[str, Any], engine: str, database_key: str
) -> dict[str, Any]:
    """What the application's connection arguments supply to a secret that lacks it (RDS-managed
    secrets hold only a username and password): the engine its driver implies, the host, port
    and database (``database_key``: the driver's name for it)."""
    defaults: dict[str, Any] = {"engine": engine}
    for ours, theirs in (("host", "host"), ("port", "port"), ("dbname", database_key)):
        if kwargs.get(theirs) is not None:
            defaults[ours] = kwargs[theirs]
    return defaults
