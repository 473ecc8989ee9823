"""The client reads secrets with the functions' own parser (keyturn_core): same rules, same
errors, and what an RDS-managed secret lacks supplied by the application."""

from __future__ import annotations

import json

import pytest

import keyturn_core
from client_lib import Credentials, SecretValueError
from keyturn_core import EngineFamily, TlsMode
from rotation_lambdas import DatabaseSecret


def test_credentials_from_rotation_secret() -> None:
    creds = Credentials.from_secret_string(
        json.dumps(
            {"engine": "aurora-postgresql", "host": "h", "username": "u", "password": "pw-0123456"}
        )
    )
    assert (creds.family, creds.port, creds.dbname) == (EngineFamily.POSTGRESQL, 5432, "postgres")
    assert "pw-0123456" not in repr(creds)
    assert "pw-0123456" not in str(creds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "not valid JSON"),
        ("[]", "must be a JSON object"),
        (json.dumps({"engine": "mysql", "host": "h", "username": "u"}), "'password'"),
        (json.dumps({"engine": "db2", "host": "h", "username": "u", "password": "p"}), "'engine'"),
        (
            json.dumps(
                {"engine": "mysql", "host": "h", "username": "u", "password": "p", "port": "x"}
            ),
            "'port'",
        ),
        (
            json.dumps(
                {"engine": "mysql", "host": "h", "username": "u", "password": "p", "ssl": 3}
            ),
            "'ssl'",
        ),
        (json.dumps({"engine": "mysql", "host": "/tmp", "username": "u", "password": "p"}), "host"),
    ],
)
def test_bad_secrets(text: str, message: str) -> None:
    with pytest.raises(SecretValueError, match=message) as info:
        Credentials.from_secret_string(text)
    assert isinstance(info.value, keyturn_core.SecretFormatError)


def test_one_parser_for_the_functions_and_the_client() -> None:
    text = json.dumps(
        {
            "engine": "mariadb",
            "host": "db.internal",
            "port": "3307",
            "username": "app",
            "password": "pw-0123456",
            "ssl": "true",
            "dbname": "shop",
        }
    )
    client, function = Credentials.from_secret_string(text), DatabaseSecret.parse(text)
    fields = ("engine", "family", "host", "port", "username", "password", "dbname", "tls_mode")
    assert [getattr(client, f) for f in fields] == [getattr(function, f) for f in fields]
    assert client.tls_mode is TlsMode.VERIFY_FULL


def test_an_rds_managed_secret_takes_the_rest_from_the_application() -> None:
    text = json.dumps({"username": "postgres", "password": "pw-0123456"})
    with pytest.raises(SecretValueError, match="'engine' is missing"):
        Credentials.from_secret_string(text)
    creds = Credentials.from_secret_string(
        text, defaults={"engine": "postgres", "host": "db.cluster-x.rds.amazonaws.com"}
    )
    assert (creds.host, creds.port, creds.username) == (
        "db.cluster-x.rds.amazonaws.com",
        5432,
        "postgres",
    )
    assert creds.raw.keys() == {"username", "password"}  # only the secret's own keys
