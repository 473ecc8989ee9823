"""Alternating users without a server: naming, limits, and MySQL 8 account statements."""

from __future__ import annotations

from typing import Any

import pytest

from keyturn_core import SecretFormatError
from keyturn_core.protocol import alternate, user_pair
from rotation_lambdas import AlternatingUsersStrategy, ConfigurationError, ConnectSettings
from rotation_lambdas.adapters import mysql_users
from rotation_lambdas.adapters.base import PairState
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.mysql_statements import ServerVersion
from rotation_lambdas.adapters.postgres import PostgresAdapter
from rotation_lambdas.strategies.alternating_users import Authority, binding_note
from rotation_lambdas.strategies.alternating_users import (
    _bound_secret as bound_secret,
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
    with pytest.raises(SecretFormatError, match="only the clone suffix"):
        user_pair("_clone")
    # The function names it as its own configuration error.
    strategy: AlternatingUsersStrategy[Any] = AlternatingUsersStrategy(adapter("postgres"))
    with pytest.raises(ConfigurationError, match="only the clone suffix"):
        strategy.pair("_clone")


def adapter(engine: str) -> PostgresAdapter | MySQLAdapter:
    return (PostgresAdapter if engine == "postgres" else MySQLAdapter)(ConnectSettings())


@pytest.mark.parametrize(
    ("engine", "ok", "too_long"),
    [
        ("postgres", "a" * 57, "a" * 58),
        ("postgres", "é" * 28, "é" * 29),  # bytes, not characters
        ("mysql", "m" * 26, "m" * 27),
    ],
)
def test_username_limits(engine: str, ok: str, too_long: str) -> None:
    """Both names of the pair must fit, whichever of them the secret holds: a name the server
    would cut to its limit is another account's (PostgreSQL truncates at 63 bytes)."""
    strategy: AlternatingUsersStrategy[Any] = AlternatingUsersStrategy(adapter(engine))
    assert strategy.pair(ok) == strategy.pair(ok + "_clone") == (ok, ok + "_clone")
    for name in (too_long, too_long + "_clone"):
        with pytest.raises(ConfigurationError, match=r"over the .* limit") as info:
            strategy.pair(name)
        assert "truncated" in str(info.value)


@pytest.mark.parametrize("name", ["app ", " app", "app\t", "ap\np"])
@pytest.mark.parametrize("engine", ["postgres", "mysql"])
def test_names_that_could_match_another_account_are_refused(engine: str, name: str) -> None:
    """MySQL compares names with PAD SPACE ('app ' = 'app'); a control character is never part
    of a real user's name."""
    with pytest.raises(ConfigurationError, match="white space or holds a control character"):
        adapter(engine).check_username(name)


ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app-AbCdEf"


@pytest.mark.parametrize(
    ("note", "bound"),
    [
        (binding_note(ARN, "app"), ARN),
        (binding_note(ARN + "x", "app"), ARN + "x"),  # another secret's clone
        (binding_note(ARN, "other"), None),  # a clone of another base
        (None, None),
        ("keyturn:{not json", None),
        ('keyturn:["app"]', None),
        ("a comment of the DBA's", None),
        ('keyturn:{"clone_of":"app","secret":7}', None),
    ],
)
def test_the_binding_note(note: str | None, bound: str | None) -> None:
    assert bound_secret(PairState(True, True, note), "app") == bound


def test_authority_names() -> None:
    assert [a.value for a in Authority] == ["created", "bound", "proven"]


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
