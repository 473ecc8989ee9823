"""Alternating users without a server: naming, limits, and MySQL 8 account statements."""

from __future__ import annotations

from typing import Any

import pytest

from rotation_lambdas import ConfigurationError, EngineFamily
from rotation_lambdas.adapters import mysql_users
from rotation_lambdas.adapters.mysql_statements import ServerVersion
from rotation_lambdas.strategies.alternating_users import (
    alternate,
    check_username_length,
    user_pair,
)


@pytest.mark.parametrize(
    ("username", "other"),
    [
        ("app", "app_clone"),
        ("app_clone", "app"),
        ("a_clone_b", "a_clone_b_clone"),
    ],
)
def test_alternate(username: str, other: str) -> None:
    assert alternate(username) == other
    assert alternate(other) == username


def test_a_name_ending_in_the_suffix_is_always_a_clone() -> None:
    # Why a base username must not end in "_clone": it would be read as the clone of another.
    assert user_pair("x_clone_clone") == ("x_clone", "x_clone_clone")
    assert alternate("x_clone_clone") == "x_clone"
    assert alternate("x_clone") == "x"


def test_only_the_suffix_is_not_a_username() -> None:
    with pytest.raises(ConfigurationError, match="only the clone suffix"):
        user_pair("_clone")


@pytest.mark.parametrize(
    ("family", "ok", "too_long"),
    [
        (EngineFamily.POSTGRESQL, "a" * 57, "a" * 58),
        (EngineFamily.POSTGRESQL, "é" * 28, "é" * 29),  # bytes, not characters
        (EngineFamily.MYSQL, "m" * 26, "m" * 27),
    ],
)
def test_username_limits(family: EngineFamily, ok: str, too_long: str) -> None:
    check_username_length(family, ok)
    check_username_length(family, ok + "_clone")
    with pytest.raises(ConfigurationError, match="too long to alternate"):
        check_username_length(family, too_long)


class ScriptedConnection:
    """Answers queries from a script and records every statement with its parameters."""

    def __init__(self, answers: dict[tuple[str, tuple[Any, ...]], list[tuple[Any, ...]]]) -> None:
        self.answers = answers
        self.statements: list[tuple[str, tuple[Any, ...]]] = []
        self._rows: list[tuple[Any, ...]] = []

    def cursor(self) -> ScriptedConnection:
        return self

    def __enter__(self) -> ScriptedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None:
        self.statements.append((statement, params))
        self._rows = self.answers.get((statement, params), [])

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows


MYSQL8 = ServerVersion.parse("8.0.36")
HOSTS = "SELECT Host FROM mysql.user WHERE User = %s"
GRANTS = "SHOW GRANTS FOR %s@%s"
CREATE = "SHOW CREATE USER %s@%s"


def test_mysql8_mirror_statements() -> None:
    conn = ScriptedConnection(
        {
            (HOSTS, ("app",)): [("%",)],
            (HOSTS, ("app_clone",)): [("old-host",)],
            (GRANTS, ("app", "%")): [
                ("GRANT USAGE ON *.* TO `app`@`%`",),
                ("GRANT SELECT, INSERT ON `shop`.* TO `app`@`%` WITH GRANT OPTION",),
                ("GRANT `reader`@`%` TO `app`@`%`",),
            ],
            (GRANTS, ("app_clone", "%")): [("GRANT DELETE ON `shop`.* TO `app_clone`@`%`",)],
            (CREATE, ("app", "%")): [
                ("CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' REQUIRE SSL",)
            ],
            (CREATE, ("app_clone", "%")): [("CREATE USER `app_clone`@`%` REQUIRE NONE",)],
        }
    )
    mysql_users.mirror_clone(conn, MYSQL8, "app", "app_clone", "pw-Clone-1")  # type: ignore[arg-type]
    writes = [s for s in conn.statements if not s[0].startswith(("SELECT", "SHOW"))]
    assert writes == [
        ("CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s", ("app_clone", "%", "pw-Clone-1")),
        ("GRANT INSERT, SELECT ON `shop`.* TO %s@%s WITH GRANT OPTION", ("app_clone", "%")),
        ("GRANT %s@%s TO %s@%s", ("reader", "%", "app_clone", "%")),
        ("REVOKE DELETE ON `shop`.* FROM %s@%s", ("app_clone", "%")),
        ("ALTER USER %s@%s REQUIRE SSL", ("app_clone", "%")),
        ("DROP USER IF EXISTS %s@%s", ("app_clone", "old-host")),
    ]
    # Passwords only ever as parameters.
    assert all("pw-Clone-1" not in statement for statement, _ in conn.statements)


def test_mariadb_sets_passwords_as_hashes() -> None:
    conn = ScriptedConnection({(HOSTS, ("app_clone",)): [("%",), ("localhost",)]})
    mysql_users.set_password(conn, ServerVersion.parse("10.11.6-MariaDB"), "app_clone", "password")  # type: ignore[arg-type]
    hashed = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert conn.statements[1:] == [
        ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", ("app_clone", "%", hashed)),
        ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", ("app_clone", "localhost", hashed)),
    ]


def test_mysql8_default_roles() -> None:
    conn = ScriptedConnection({})
    mysql_users._set_default_roles(conn, MYSQL8, ("a", "b"), ("app_clone", "%"))  # type: ignore[arg-type]
    mysql_users._set_default_roles(conn, MYSQL8, (), ("app_clone", "%"))  # type: ignore[arg-type]
    assert conn.statements == [
        ("ALTER USER %s@%s DEFAULT ROLE `a`, `b`", ("app_clone", "%")),
        ("ALTER USER %s@%s DEFAULT ROLE NONE", ("app_clone", "%")),
    ]
