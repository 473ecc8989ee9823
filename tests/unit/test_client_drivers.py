"""Connection arguments from a secret for psycopg and PyMySQL, and errors that are the drivers'."""

from __future__ import annotations

import json
import ssl
from typing import Any

import psycopg
import pymysql
import pytest

from client_lib import (
    AuthenticationFailed,
    ClientConfigurationError,
    Credentials,
    SecretCache,
    SecretCacheError,
    SecretValueError,
    psycopg_connector,
    pymysql_connector,
)
from client_lib import driver_psycopg as pgd
from client_lib import driver_pymysql as myd


def creds(engine: str, **extra: Any) -> Credentials:
    data = {"engine": engine, "host": "db.internal", "username": "app", "password": "pw-0123456"}
    return Credentials.from_mapping({**data, **extra})


def test_psycopg_takes_tls_from_the_secret_as_the_functions_do() -> None:
    params = pgd.connection_params(creds("postgres"), {}, 5.0)
    assert params["sslmode"] == "verify-full"  # the functions' default, never psycopg's "prefer"
    assert params["sslrootcert"] == "system"
    assert (params["user"], params["password"], params["dbname"]) == (
        "app",
        "pw-0123456",
        "postgres",
    )
    assert params["connect_timeout"] == 5
    assert pgd.connection_params(creds("postgres", sslmode="require"), {}, 5.0)["sslmode"] == (
        "require"
    )
    assert "sslrootcert" not in pgd.connection_params(creds("postgres", ssl=False), {}, 5.0)


def test_psycopg_application_arguments_override_the_secret_but_not_its_credentials() -> None:
    params = pgd.connection_params(
        creds("postgres", sslmode="verify-full"),
        {
            "host": "pgbouncer.internal",
            "sslrootcert": "/ca.pem",
            "prepare_threshold": None,
            "conninfo": "port=6432 application_name=web",
        },
        30.0,
    )
    assert (params["host"], params["port"], params["application_name"]) == (
        "pgbouncer.internal",
        "6432",
        "web",
    )
    assert params["sslrootcert"] == "/ca.pem"
    assert params["prepare_threshold"] is None
    with pytest.raises(ClientConfigurationError, match="come from the secret"):
        pgd.connection_params(creds("postgres"), {"password": "x"}, 5.0)
    with pytest.raises(ClientConfigurationError, match="come from the secret"):
        pgd.connection_params(creds("postgres"), {"conninfo": "user=root"}, 5.0)
    with pytest.raises(ClientConfigurationError, match="come from the secret"):
        psycopg_connector(SecretCache(lambda: None), "s", user="root")  # type: ignore[arg-type,return-value]


def test_psycopg_verify_ca_needs_a_ca_bundle() -> None:
    with pytest.raises(psycopg.OperationalError, match="needs sslrootcert") as info:
        pgd.connection_params(creds("postgres", sslmode="verify-ca"), {}, 5.0)
    assert isinstance(info.value, SecretValueError)
    params = pgd.connection_params(creds("postgres", sslmode="verify-ca"), {"sslrootcert": "/c"}, 5)
    assert params["sslrootcert"] == "/c"


def test_psycopg_timeout_is_capped_by_the_budget_left() -> None:
    assert (
        pgd.connection_params(creds("postgres"), {"connect_timeout": 30}, 4.2)["connect_timeout"]
        == 5
    )  # ceil(4.2); libpq's minimum is 2
    assert (
        pgd.connection_params(creds("postgres"), {"connect_timeout": 3}, 9.0)["connect_timeout"]
        == 3
    )
    assert pgd.connection_params(creds("postgres"), {}, 0.3)["connect_timeout"] == 2


def test_pymysql_always_gets_an_explicit_tls_context_unless_disabled() -> None:
    params = myd.connection_params(creds("mysql"), {}, 5.0)
    ctx = params["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert (ctx.check_hostname, ctx.verify_mode) == (True, ssl.CERT_REQUIRED)
    assert params["connect_timeout"] == 5.0
    required = myd.connection_params(creds("mysql", sslmode="require"), {}, 5.0)["ssl"]
    assert required.verify_mode == ssl.CERT_NONE
    off = myd.connection_params(creds("mysql", ssl=False), {}, 5.0)
    assert off["ssl_disabled"] is True
    assert "ssl" not in off


def test_pymysql_ca_bundle_and_application_tls() -> None:
    cafile = ssl.get_default_verify_paths().cafile
    params = myd.connection_params(creds("mysql"), {"ssl_ca": cafile, "database": "shop"}, 9.0)
    assert isinstance(params["ssl"], ssl.SSLContext)
    assert "ssl_ca" not in params
    assert params["database"] == "shop"
    own = ssl.create_default_context()
    assert myd.connection_params(creds("mysql"), {"ssl": own}, 9.0)["ssl"] is own
    with pytest.raises(ClientConfigurationError):
        myd.connection_params(creds("mysql"), {"passwd": "x"}, 9.0)


def test_connector_errors_are_also_the_drivers_operational_errors() -> None:
    for driver, base in ((pgd, psycopg.OperationalError), (myd, pymysql.err.OperationalError)):
        failed = driver.ERRORS.authentication_failed("no version logged in")
        assert isinstance(failed, AuthenticationFailed)
        assert isinstance(failed, base)
        assert str(failed) == "no version logged in"
        unavailable = driver.ERRORS.secret_unavailable("throttled", transient=True)
        assert isinstance(unavailable, SecretCacheError)
        assert isinstance(unavailable, base)
        assert unavailable.transient
        invalid = driver.ERRORS.secret_invalid("the secret key 'host' is missing")
        assert isinstance(invalid, SecretValueError)
        assert isinstance(invalid, base)
    assert myd.ERRORS.authentication_failed("x").args[0] == 1045


def test_an_rds_managed_secret_works_with_the_applications_host() -> None:
    class Source:
        def get_secret_value(self, **kwargs: str) -> dict[str, Any]:
            text = json.dumps({"username": "postgres", "password": "pw-0123456"})
            return {"VersionId": "v1", "VersionStages": ["AWSCURRENT"], "SecretString": text}

    seen: list[dict[str, Any]] = []

    def fake_connect(c: Credentials, timeout: float, overrides: Any) -> Any:
        seen.append({"host": c.host, "port": c.port})
        return "conn"

    connector = pymysql_connector(SecretCache(Source()), "rds!db-1", host="db.internal")
    connector._connect = fake_connect
    assert connector.connect() == "conn"  # type: ignore[comparison-overlap]
    assert seen == [{"host": "db.internal", "port": 3306}]
    bare = pymysql_connector(SecretCache(Source()), "rds!db-1")
    with pytest.raises(pymysql.err.OperationalError, match="'host' is missing"):
        bare.connect()


def test_psycopg_none_never_unsets_the_secrets_tls_and_plaintext_fallback_is_refused() -> None:
    params = pgd.connection_params(creds("postgres"), {"sslmode": None, "host": None}, 5.0)
    assert (params["sslmode"], params["host"]) == ("verify-full", "db.internal")
    assert (
        pgd.connection_params(creds("postgres"), {"prepare_threshold": None}, 5.0)[
            "prepare_threshold"
        ]
        is None
    )  # None that means something stays
    for weak in ({"sslmode": "prefer"}, {"sslmode": " Allow"}, {"conninfo": "sslmode=prefer"}):
        with pytest.raises(ClientConfigurationError, match="continues in plaintext"):
            pgd.connection_params(creds("postgres"), weak, 5.0)
    with pytest.raises(ClientConfigurationError, match="plaintext"):
        psycopg_connector(SecretCache(object()), "s", sslmode="prefer")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "check_hostname", "verify_mode"),
    [
        ({}, True, ssl.CERT_REQUIRED),
        ({"ssl_verify_cert": False}, False, ssl.CERT_NONE),  # TLS without checks, still TLS
        ({"ssl_verify_identity": False}, False, ssl.CERT_REQUIRED),
        ({"ssl": None}, True, ssl.CERT_REQUIRED),  # None: not set
        ({"ssl_disabled": False}, True, ssl.CERT_REQUIRED),
        ({"ssl": {}}, True, ssl.CERT_REQUIRED),
        ({"ssl_cert": None, "ssl_key": None}, True, ssl.CERT_REQUIRED),
    ],
)
def test_pymysql_application_tls_arguments_never_allow_plaintext(
    given: dict[str, Any], check_hostname: bool, verify_mode: ssl.VerifyMode
) -> None:
    """PyMySQL given ssl_* arguments alone uses its "preferred" mode, which continues in
    plaintext: they shape our explicit context instead."""
    params = myd.connection_params(creds("mysql"), given, 5.0)
    ctx = params["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert (ctx.check_hostname, ctx.verify_mode) == (check_hostname, verify_mode)
    assert not any(key.startswith("ssl_") for key in params)


def test_pymysql_verify_arguments_raise_a_weaker_secret_and_db_is_database() -> None:
    upgraded = myd.connection_params(creds("mysql", ssl=False), {"ssl_verify_identity": True}, 5)
    assert upgraded["ssl"].check_hostname is True
    plain = myd.connection_params(creds("mysql"), {"ssl_disabled": True}, 5.0)
    assert plain["ssl_disabled"] is True
    assert "ssl" not in plain
    assert myd.connection_params(creds("mysql", dbname="a"), {"db": "b"}, 5.0)["database"] == "b"


def test_a_psycopg_error_keeps_no_password_once_classified() -> None:
    from psycopg.errors import FinishedPGconn

    pgconn = FinishedPGconn(
        used_password=True,
        password=b"pw-0123456",
        info=[(b"password", b"pw-0123456")],  # type: ignore[list-item]
    )
    exc = psycopg.OperationalError("connection failed", pgconn=pgconn)
    pgd.scrub(exc)
    assert exc.pgconn is None  # its password, its info and its repr all held it


def test_our_psycopg_errors_are_whole_psycopg_errors() -> None:
    """ValueError (SecretValueError's base) before psycopg.Error in the MRO skipped
    psycopg's __init__: reading .pgconn or .diag raised AttributeError."""
    for error in (pgd.SecretInvalid("x"), pgd.SecretUnavailable("x", transient=True)):
        assert error.pgconn is None
        assert error.sqlstate is None
        assert str(error) == "x"
