"""Driver errors are classified without a server, and never carry a secret."""

from __future__ import annotations

import ssl
from typing import Any

import psycopg
import pymysql
import pytest

from rotation_lambdas import (
    AuthenticationError,
    ConfigurationError,
    DatabaseSecret,
    NetworkError,
    PrivilegeError,
    RotationError,
    TlsError,
)
from rotation_lambdas.adapters import RedactedDriverError, driver_message
from rotation_lambdas.adapters import mysql as my
from rotation_lambdas.adapters import postgres as pg
from rotation_lambdas.adapters.base import redacted_cause

SECRET = DatabaseSecret.from_mapping(
    {"engine": "postgres", "host": "db.internal", "username": "app", "password": "pw-123456"}
)


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (
            psycopg.OperationalError(
                'connection failed: connection to server at "10.0.0.1", port 5432 failed: '
                'FATAL:  password authentication failed for user "app"'
            ),
            AuthenticationError,
        ),
        (psycopg.errors.lookup("28P01")("invalid password"), AuthenticationError),
        (psycopg.errors.lookup("28000")("rejected"), AuthenticationError),
        (
            psycopg.OperationalError('FATAL: no pg_hba.conf entry for host "1.2.3.4", SSL off'),
            AuthenticationError,
        ),
        (psycopg.OperationalError("SSL error: certificate verify failed"), TlsError),
        (
            psycopg.OperationalError(
                'server certificate for "localhost" does not match host name "127.0.0.1"'
            ),
            TlsError,
        ),
        (psycopg.OperationalError("server does not support SSL, but SSL was required"), TlsError),
        (psycopg.OperationalError('FATAL: database "nope" does not exist'), ConfigurationError),
        (psycopg.OperationalError("Connection refused"), NetworkError),
        (psycopg.OperationalError("timeout expired"), NetworkError),
        (psycopg.errors.lookup("42501")("permission denied to alter role"), PrivilegeError),
        (psycopg.ProgrammingError("syntax error"), RotationError),
    ],
)
def test_postgres_classification(exc: psycopg.Error, category: type[RotationError]) -> None:
    result = pg.classify_error(exc, SECRET)
    assert type(result) is category
    assert "db.internal:5432" in str(result)
    assert "'app'" in str(result)


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (
            pymysql.err.OperationalError(1045, "Access denied for user 'app'@'h'"),
            AuthenticationError,
        ),
        (pymysql.err.OperationalError(1227, "Access denied; you need CREATE USER"), PrivilegeError),
        (pymysql.err.OperationalError(1044, "Access denied to database"), PrivilegeError),
        (
            pymysql.err.OperationalError(2026, "SSL is required but the server doesn't support it"),
            TlsError,
        ),
        (
            pymysql.err.OperationalError(
                2003, "Can't connect to MySQL server on 'h' ([SSL: CERTIFICATE_VERIFY_FAILED])"
            ),
            TlsError,
        ),
        (pymysql.err.OperationalError(1049, "Unknown database 'x'"), ConfigurationError),
        (
            pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'h' (timed out)"),
            NetworkError,
        ),
        (pymysql.err.ProgrammingError(1064, "You have an error in your SQL syntax"), RotationError),
    ],
)
def test_mysql_classification(exc: BaseException, category: type[RotationError]) -> None:
    assert type(my.classify_error(exc, SECRET)) is category


def test_mysql_tls_failure_seen_through_the_context() -> None:
    exc = pymysql.err.OperationalError(2003, "Can't connect to MySQL server on 'h'")
    exc.__context__ = ssl.SSLCertVerificationError("verify failed")
    assert type(my.classify_error(exc, SECRET)) is TlsError


def test_messages_are_redacted_and_causes_replaced() -> None:
    password = "hunter2-very-secret"
    exc = pymysql.err.ProgrammingError(
        1064, f"You have an error in your SQL syntax near '{password}' at line 1"
    )
    classified = my.classify_error(exc, SECRET, [password])
    assert password not in str(classified)
    assert "***" in str(classified)
    cause = redacted_cause(exc, [password])
    assert isinstance(cause, RedactedDriverError)
    assert password not in str(cause)
    assert "pymysql.err.ProgrammingError" in str(cause)


def test_driver_message_is_one_bounded_line() -> None:
    message = driver_message(ValueError("a\nb\n" + "c" * 1000), ["b"])
    assert "\n" not in message
    assert len(message) == 400
    assert message.startswith("a *** c")


@pytest.mark.parametrize(
    ("guard", "exc", "category"),
    [
        (
            my._as_superuser,
            pymysql.err.OperationalError(1698, "Access denied for user 'su'@'%'"),
            PrivilegeError,
        ),
        (my._as_superuser, pymysql.err.OperationalError(1227, "need CREATE USER"), PrivilegeError),
        (
            my._as_superuser,
            pymysql.err.OperationalError(1396, "Operation CREATE USER failed"),
            RotationError,
        ),
        (
            pg._as_superuser,
            psycopg.errors.lookup("42501")("permission denied to create role"),
            PrivilegeError,
        ),
        (pg._as_superuser, psycopg.errors.lookup("42704")("role does not exist"), RotationError),
        (pg._as_superuser, LookupError("the base user 'app' does not exist"), ConfigurationError),
    ],
)
def test_superuser_session_errors(
    guard: Any, exc: BaseException, category: type[RotationError]
) -> None:
    def session() -> None:
        with guard("set the password of 'app'", ["s3cret-value-0001"]):
            raise exc

    with pytest.raises(RotationError) as info:
        session()
    assert type(info.value) is category
    assert "'app'" in str(info.value)


def test_superuser_session_redacts_what_was_added_inside() -> None:
    def session() -> None:
        secrets = ["first-secret-0001"]
        with my._as_superuser("set a password", secrets):
            secrets.append("hash-added-0002")  # e.g. a hash computed inside the block
            raise pymysql.err.ProgrammingError(1064, "syntax error near 'hash-added-0002'")

    with pytest.raises(RotationError) as info:
        session()
    assert "hash-added-0002" not in str(info.value)
    assert "hash-added-0002" not in str(info.value.__cause__)
