from __future__ import annotations

import json
from typing import Any

import pytest

from rotation_lambdas import DatabaseSecret, EngineFamily, SecretFormatError, TlsMode

PASSWORD = "Pa55-word-that-must-never-show"


def secret(**overrides: Any) -> str:
    base: dict[str, Any] = {
        "engine": "postgres",
        "host": "db.example",
        "username": "app",
        "password": PASSWORD,
    }
    base.update(overrides)
    return json.dumps({k: v for k, v in base.items() if v is not ...})


@pytest.mark.parametrize(
    ("engine", "family", "port", "dbname"),
    [
        ("postgres", EngineFamily.POSTGRESQL, 5432, "postgres"),
        ("postgresql", EngineFamily.POSTGRESQL, 5432, "postgres"),
        ("aurora-postgresql", EngineFamily.POSTGRESQL, 5432, "postgres"),
        ("mysql", EngineFamily.MYSQL, 3306, None),
        ("mariadb", EngineFamily.MYSQL, 3306, None),
        ("aurora-mysql", EngineFamily.MYSQL, 3306, None),
        ("aurora", EngineFamily.MYSQL, 3306, None),
        ("MySQL", EngineFamily.MYSQL, 3306, None),
    ],
)
def test_engines_and_defaults(
    engine: str, family: EngineFamily, port: int, dbname: str | None
) -> None:
    parsed = DatabaseSecret.parse(secret(engine=engine))
    assert (parsed.family, parsed.port, parsed.dbname) == (family, port, dbname)


def test_explicit_port_dbname_and_string_port() -> None:
    parsed = DatabaseSecret.parse(secret(port="6543", dbname="appdb"))
    assert (parsed.port, parsed.dbname) == (6543, "appdb")


def test_repr_and_str_hide_the_password() -> None:
    parsed = DatabaseSecret.parse(secret())
    assert PASSWORD not in repr(parsed)
    assert PASSWORD not in str(parsed)


def test_with_credentials_keeps_every_other_key() -> None:
    parsed = DatabaseSecret.parse(secret(dbClusterIdentifier="c1", masterarn="arn:m", port=1234))
    new = parsed.with_credentials(password="new-password-1")
    data = json.loads(new.to_json())
    assert data["password"] == "new-password-1"
    assert data["dbClusterIdentifier"] == "c1"
    assert data["masterarn"] == "arn:m"
    assert data["port"] == 1234
    assert json.loads(parsed.to_json())["password"] == PASSWORD  # the original is unchanged


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json " + PASSWORD, "is not valid JSON"),
        (json.dumps([PASSWORD]), "must be a JSON object"),
        ("[" * 100000, "larger than 65536"),
        (secret(engine=...), "key 'engine' is missing"),
        (secret(engine="oracle-ee"), "key 'engine' must be one of"),
        (secret(host=...), "key 'host' is missing"),
        (secret(host=""), "key 'host' must be a non-empty string"),
        (secret(host=12), "key 'host' must be a non-empty string"),
        (secret(host="a\x00b"), "key 'host' contains a NUL"),
        (secret(username=...), "key 'username' is missing"),
        (secret(username="u" * 200), "key 'username' is longer than 128"),
        (secret(password=...), "key 'password' is missing or not a non-empty string"),
        (secret(password=12345678), "key 'password' is missing or not a non-empty string"),
        (secret(password=""), "key 'password' is missing or not a non-empty string"),
        (secret(password="pw\x00rest"), "key 'password' contains a NUL"),
        (secret(port=0), "key 'port' must be an integer"),
        (secret(port=70000), "key 'port' must be an integer"),
        (secret(port="54x"), "key 'port' must be an integer"),
        (secret(port=True), "key 'port' must be an integer"),
        (secret(port="\u00b2"), "key 'port' must be an integer"),  # a digit to str.isdigit()
        (secret(port="5" * 5000), "key 'port' must be an integer"),  # past int()'s digit limit
        (secret(port=1).replace(": 1", ": " + "9" * 5000), "is not valid JSON"),
        (secret(dbname=5), "key 'dbname' must be a non-empty string"),
        (secret(sslmode="prefer"), "key 'sslmode' must be one of"),
        (secret(ssl="maybe"), "key 'ssl' must be true or false"),
        (secret(ssl=True, sslmode="disable"), "keys 'ssl' and 'sslmode' disagree"),
    ],
)
def test_invalid_secrets_name_the_key_and_not_the_value(text: str, message: str) -> None:
    with pytest.raises(SecretFormatError, match=message) as info:
        DatabaseSecret.parse(text, label="AWSCURRENT")
    assert PASSWORD not in str(info.value)
    assert info.value.__cause__ is None  # the JSON decoder's message quotes the input
    assert str(info.value).startswith("AWSCURRENT")


@pytest.mark.parametrize(
    ("overrides", "mode"),
    [
        ({}, None),
        ({"sslmode": "verify-ca"}, TlsMode.VERIFY_CA),
        ({"sslmode": "REQUIRE"}, TlsMode.REQUIRE),
        ({"ssl": True}, TlsMode.VERIFY_FULL),
        ({"ssl": "true"}, TlsMode.VERIFY_FULL),
        ({"ssl": False}, TlsMode.DISABLE),
        ({"ssl": "False"}, TlsMode.DISABLE),
        ({"ssl": True, "sslmode": "verify-ca"}, TlsMode.VERIFY_CA),
        ({"ssl": False, "sslmode": "disable"}, TlsMode.DISABLE),
    ],
)
def test_tls_mode_from_sslmode_and_ssl(overrides: dict[str, Any], mode: TlsMode | None) -> None:
    assert DatabaseSecret.parse(secret(**overrides)).tls_mode is mode
