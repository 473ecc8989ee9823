"""Database credentials read from a rotation-format secret."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .errors import SecretValueError

_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306}
_FAMILIES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "aurora-postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "aurora-mysql": "mysql",
    "aurora": "mysql",
}


@dataclass(frozen=True, slots=True)
class Credentials:
    """Connection credentials; ``repr`` and ``str`` never show the password.

    >>> c = Credentials.from_secret_string(
    ...     '{"engine": "mysql", "host": "db", "username": "app", "password": "s3cret"}')
    >>> c
    Credentials(engine='mysql', host='db', port=3306, username='app', dbname=None)
    """

    engine: str
    host: str
    port: int
    username: str
    password: str = field(repr=False)
    dbname: str | None = None

    @classmethod
    def from_secret_string(cls, text: str) -> Credentials:
        """Parse rotation-format JSON; errors name the key at fault, never a value."""
        try:
            data: Any = json.loads(text)
        except ValueError:
            raise SecretValueError("the secret is not valid JSON") from None
        if not isinstance(data, dict):
            raise SecretValueError("the secret must be a JSON object")
        values: dict[str, str] = {}
        for key in ("engine", "host", "username", "password"):
            value = data.get(key)
            if not isinstance(value, str) or (key != "password" and not value):
                raise SecretValueError(f"the secret key '{key}' is missing or not a string")
            values[key] = value
        family = _FAMILIES.get(values["engine"].lower())
        if family is None:
            raise SecretValueError("the secret key 'engine' names an unsupported engine")
        port = data.get("port", _DEFAULT_PORTS[family])
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise SecretValueError("the secret key 'port' is not an integer") from None
        dbname = data.get("dbname")
        if dbname is not None and not isinstance(dbname, str):
            raise SecretValueError("the secret key 'dbname' is not a string")
        return cls(
            engine=family,
            host=values["host"],
            port=port,
            username=values["username"],
            password=values["password"],
            dbname=dbname,
        )
