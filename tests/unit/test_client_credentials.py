from __future__ import annotations

import json

import pytest

from client_lib import Credentials, SecretValueError


def test_credentials_from_rotation_secret() -> None:
    creds = Credentials.from_secret_string(
        json.dumps(
            {"engine": "aurora-postgresql", "host": "h", "username": "u", "password": "pw-0123456"}
        )
    )
    assert (creds.engine, creds.port, creds.dbname) == ("postgres", 5432, None)
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
    ],
)
def test_bad_secrets(text: str, message: str) -> None:
    with pytest.raises(SecretValueError, match=message):
        Credentials.from_secret_string(text)
