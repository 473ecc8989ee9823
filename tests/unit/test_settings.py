from __future__ import annotations

from pathlib import Path

import pytest

from rotation_lambdas import ConfigurationError, ConnectSettings, PasswordPolicy, TlsMode
from rotation_lambdas import settings as s


def test_policy_defaults() -> None:
    policy = PasswordPolicy.from_env({})
    assert policy.length == 32
    assert policy.require_each_included_type is True
    request = policy.request()
    assert request["PasswordLength"] == 32
    assert request["IncludeSpace"] is False
    for char in ":/@\\'\"`%?#&+=;$":
        assert char in request["ExcludeCharacters"]


def test_policy_from_env() -> None:
    policy = PasswordPolicy.from_env(
        {
            s.ENV_PASSWORD_LENGTH: "64",
            s.ENV_EXCLUDE_CHARACTERS: "ab",
            s.ENV_EXCLUDE_PUNCTUATION: "true",
            s.ENV_INCLUDE_SPACE: "no",
            s.ENV_REQUIRE_EACH_INCLUDED_TYPE: "0",
        }
    )
    assert policy.request() == {
        "PasswordLength": 64,
        "ExcludeCharacters": "ab",
        "ExcludeNumbers": False,
        "ExcludePunctuation": True,
        "ExcludeUppercase": False,
        "ExcludeLowercase": False,
        "IncludeSpace": False,
        "RequireEachIncludedType": False,
    }


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({s.ENV_PASSWORD_LENGTH: "abc"}, "KEYTURN_PASSWORD_LENGTH must be an integer"),
        ({s.ENV_PASSWORD_LENGTH: "4"}, "KEYTURN_PASSWORD_LENGTH must be from 8 to 4096"),
        ({s.ENV_PASSWORD_LENGTH: "5000"}, "KEYTURN_PASSWORD_LENGTH must be from 8 to 4096"),
        ({s.ENV_EXCLUDE_NUMBERS: "perhaps"}, "KEYTURN_EXCLUDE_NUMBERS must be true or false"),
        (
            {
                s.ENV_EXCLUDE_NUMBERS: "1",
                s.ENV_EXCLUDE_PUNCTUATION: "1",
                s.ENV_EXCLUDE_UPPERCASE: "1",
                s.ENV_EXCLUDE_LOWERCASE: "1",
            },
            "excludes every character type",
        ),
    ],
)
def test_policy_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PasswordPolicy.from_env(env)


def test_connect_defaults_are_secure() -> None:
    settings = ConnectSettings.from_env({})
    assert settings.default_tls_mode is TlsMode.VERIFY_FULL
    assert settings.min_tls_mode is TlsMode.VERIFY_FULL
    assert settings.ca_bundle is None
    assert settings.connect_timeout == 5.0


def test_connect_from_env(tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("x")
    settings = ConnectSettings.from_env(
        {
            s.ENV_TLS_MODE: "Verify-CA",
            s.ENV_TLS_MIN_MODE: "require",
            s.ENV_TLS_CA_BUNDLE: str(bundle),
            s.ENV_CONNECT_TIMEOUT: "2.5",
        }
    )
    assert settings == ConnectSettings(TlsMode.VERIFY_CA, str(bundle), 2.5, TlsMode.REQUIRE)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({s.ENV_TLS_MODE: "prefer"}, "KEYTURN_TLS_MODE must be one of"),
        ({s.ENV_TLS_MIN_MODE: "allow"}, "KEYTURN_TLS_MIN_MODE must be one of"),
        (
            {s.ENV_TLS_MODE: "require"},
            "KEYTURN_TLS_MODE 'require' is weaker than KEYTURN_TLS_MIN_MODE 'verify-full'",
        ),
        (
            {s.ENV_TLS_CA_BUNDLE: "/nonexistent/ca.pem"},
            "KEYTURN_TLS_CA_BUNDLE names .*which does not exist",
        ),
        ({s.ENV_CONNECT_TIMEOUT: "0"}, "KEYTURN_CONNECT_TIMEOUT must be from 0.5 to 60"),
        ({s.ENV_CONNECT_TIMEOUT: "soon"}, "KEYTURN_CONNECT_TIMEOUT must be a number"),
    ],
)
def test_connect_errors_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ConnectSettings.from_env(env)
