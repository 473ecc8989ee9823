"""SQL statement building for every server flavour, MySQL 8 included (no MySQL 8 server here)."""

from __future__ import annotations

import pytest

from rotation_lambdas import ConfigurationError
from rotation_lambdas.adapters.mysql import (
    ServerVersion,
    Statement,
    native_password_hash,
    own_password_statement,
)
from rotation_lambdas.adapters.postgres import alter_password_statement

NEW, OLD = "new-Secret-123", "old-Secret-456"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.11.6-MariaDB-0+deb12u1", ServerVersion(True, 10, 11, 6)),
        ("5.5.5-10.6.16-MariaDB", ServerVersion(True, 10, 6, 16)),
        ("11.4.2-MariaDB-log", ServerVersion(True, 11, 4, 2)),
        ("8.0.36", ServerVersion(False, 8, 0, 36)),
        ("8.0.28-debug", ServerVersion(False, 8, 0, 28)),
        ("5.7.12-log", ServerVersion(False, 5, 7, 12)),
        ("8.4.0", ServerVersion(False, 8, 4, 0)),
        ("9.1", ServerVersion(False, 9, 1, 0)),
    ],
)
def test_version_parsing(text: str, expected: ServerVersion) -> None:
    assert ServerVersion.parse(text) == expected


def test_unparseable_version() -> None:
    with pytest.raises(ConfigurationError, match="not a recognisable version"):
        ServerVersion.parse("banana")


@pytest.mark.parametrize(
    ("version", "sql", "params"),
    [
        ("10.11.6-MariaDB", "SET PASSWORD = %s", (native_password_hash(NEW),)),
        ("10.3.39-MariaDB", "SET PASSWORD = %s", (native_password_hash(NEW),)),
        ("5.6.51", "SET PASSWORD = PASSWORD(%s)", (NEW,)),
        ("5.7.5", "SET PASSWORD = PASSWORD(%s)", (NEW,)),
        ("5.7.6", "ALTER USER CURRENT_USER() IDENTIFIED BY %s", (NEW,)),
        ("5.7.12", "ALTER USER CURRENT_USER() IDENTIFIED BY %s", (NEW,)),  # Aurora MySQL 2
        ("8.0.12", "ALTER USER CURRENT_USER() IDENTIFIED BY %s", (NEW,)),
        ("8.0.13", "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (NEW, OLD)),
        ("8.0.36", "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (NEW, OLD)),
        ("8.4.0", "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (NEW, OLD)),
        ("9.1.0", "ALTER USER CURRENT_USER() IDENTIFIED BY %s REPLACE %s", (NEW, OLD)),
    ],
)
def test_own_password_statement_per_version(
    version: str, sql: str, params: tuple[str, ...]
) -> None:
    statement = own_password_statement(ServerVersion.parse(version), NEW, OLD)
    assert statement == Statement(sql, params)
    # Passwords travel only as parameters, never inside the SQL text.
    assert NEW not in statement.sql
    assert OLD not in statement.sql


def test_statement_repr_hides_parameters() -> None:
    statement = own_password_statement(ServerVersion.parse("8.0.36"), NEW, OLD)
    assert NEW not in repr(statement)
    assert OLD not in repr(statement)


def test_native_password_hash_matches_the_server_function() -> None:
    # MariaDB and MySQL 5.7: SELECT PASSWORD('password')
    assert native_password_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"


@pytest.mark.parametrize(
    ("username", "quoted"),
    [
        ("app", '"app"'),
        ('we"ird', '"we""ird"'),
        ("Robert'); DROP TABLE students;--", '"Robert\'); DROP TABLE students;--"'),
        ("ünï code", '"ünï code"'),
    ],
)
def test_postgres_statement_quotes_the_identifier(username: str, quoted: str) -> None:
    verifier = "SCRAM-SHA-256$4096:c2FsdA==$c3RvcmVk:c2VydmVy"
    text = alter_password_statement(username, verifier).as_string(None)
    assert text == f"ALTER ROLE {quoted} WITH PASSWORD '{verifier}'"
