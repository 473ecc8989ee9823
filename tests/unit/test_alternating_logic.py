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


def test_mariadb_sets_passwords_as_hashes() -> None:
    conn = ScriptedConnection({(HOSTS, ("app_clone",)): [("%",), ("localhost",)]})
    mysql_users.set_password(conn, ServerVersion.parse("10.11.6-MariaDB"), "app_clone", "password")  # type: ignore[arg-type]
    hashed = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    assert conn.statements[1:] == [
        ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", ("app_clone", "%", hashed)),
        ("ALTER USER %s@%s IDENTIFIED BY PASSWORD %s", ("app_clone", "localhost", hashed)),
    ]


def test_mysql8_mirror_reads_everything_before_it_writes() -> None:
    conn = ScriptedConnection(
        {
            (HOSTS, ("app",)): [("%",)],
            (HOSTS, ("app_clone",)): [("old-host",)],
            (GRANTS, ("app", "%")): [
                ("GRANT USAGE ON *.* TO `app`@`%`",),
                ("GRANT SELECT, INSERT ON `shop`.* TO `app`@`%` WITH GRANT OPTION",),
            ],
            (GRANTS, ("app_clone", "old-host")): [
                ("GRANT USAGE ON *.* TO `app_clone`@`old-host`",)
            ],
            (CREATE, ("app", "%")): [("CREATE USER `app`@`%` REQUIRE SSL",)],
            (CREATE, ("app_clone", "old-host")): [("CREATE USER `app_clone`@`old-host`",)],
        }
    )
    mysql_users.mirror_clone(conn, MYSQL8, "app", "app_clone", "pw-Clone-1")  # type: ignore[arg-type]
    kinds = [statement.split()[0] for statement, _ in conn.statements]
    first_write = kinds.index("CREATE")
    assert set(kinds[:first_write]) == {"SELECT", "SHOW"}
    assert set(kinds[first_write:]) <= {"CREATE", "GRANT", "REVOKE", "ALTER", "DROP"}
    # Passwords only ever as parameters.
    assert all("pw-Clone-1" not in statement for statement, _ in conn.statements)


def test_an_unreadable_grant_changes_nothing() -> None:
    conn = ScriptedConnection(
        {
            (HOSTS, ("app",)): [("%",), ("localhost",)],
            (GRANTS, ("app", "%")): [("GRANT SELECT ON `shop`.* TO `app`@`%`",)],
            (GRANTS, ("app", "localhost")): [
                ('GRANT SELECT ON "ho\\_app".* TO "app"@"localhost"',)
            ],
        }
    )
    with pytest.raises(ConfigurationError, match="double quotes"):
        mysql_users.mirror_clone(conn, MYSQL8, "app", "app_clone", "pw-Clone-1")  # type: ignore[arg-type]
    assert all(s.startswith(("SELECT", "SHOW")) for s, _ in conn.statements)
