"""How each TLS mode becomes driver settings: nothing ever silently allows plaintext."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from rotation_lambdas import ConnectSettings, DatabaseSecret, TlsMode
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.postgres import PostgresAdapter

CA = str(Path(ssl.get_default_verify_paths().cafile or __file__))


def secret(engine: str, **extra: object) -> DatabaseSecret:
    return DatabaseSecret.from_mapping(
        {"engine": engine, "host": "db", "username": "u", "password": "p", **extra}
    )


@pytest.mark.parametrize(
    ("mode", "rootcert"),
    [
        (TlsMode.DISABLE, None),
        (TlsMode.REQUIRE, None),
        (TlsMode.VERIFY_CA, CA),
        (TlsMode.VERIFY_FULL, CA),
    ],
)
def test_postgres_modes(mode: TlsMode, rootcert: str | None) -> None:
    adapter = PostgresAdapter(ConnectSettings(ca_bundle=CA))
    kwargs = adapter.connect_kwargs(secret("postgres", sslmode=mode.value))
    assert kwargs["sslmode"] == mode.value
    assert kwargs.get("sslrootcert") == rootcert


def test_postgres_default_mode_uses_the_system_store_without_a_bundle() -> None:
    kwargs = PostgresAdapter(ConnectSettings()).connect_kwargs(secret("postgres"))
    assert kwargs["sslmode"] == "verify-full"
    assert kwargs["sslrootcert"] == "system"
    assert kwargs["connect_timeout"] == 5


def test_postgres_timeout_respects_libpq_minimum() -> None:
    adapter = PostgresAdapter(ConnectSettings(connect_timeout=0.5))
    assert adapter.connect_kwargs(secret("postgres"))["connect_timeout"] == 2


@pytest.mark.parametrize(
    ("mode", "check_hostname", "verify_mode"),
    [
        (TlsMode.REQUIRE, False, ssl.CERT_NONE),
        (TlsMode.VERIFY_CA, False, ssl.CERT_REQUIRED),
        (TlsMode.VERIFY_FULL, True, ssl.CERT_REQUIRED),
    ],
)
def test_mysql_modes(mode: TlsMode, check_hostname: bool, verify_mode: ssl.VerifyMode) -> None:
    kwargs = MySQLAdapter(ConnectSettings(ca_bundle=CA)).connect_kwargs(
        secret("mysql", sslmode=mode.value)
    )
    ctx = kwargs["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname is check_hostname
    assert ctx.verify_mode == verify_mode
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert "ssl_disabled" not in kwargs


def test_mysql_disable_is_explicit() -> None:
    kwargs = MySQLAdapter(ConnectSettings()).connect_kwargs(secret("mysql", ssl=False))
    assert kwargs["ssl_disabled"] is True
    assert "ssl" not in kwargs


def test_function_default_applies_when_the_secret_is_silent() -> None:
    adapter = MySQLAdapter(ConnectSettings(default_tls_mode=TlsMode.VERIFY_CA, ca_bundle=CA))
    assert adapter.tls_mode(secret("mysql")) is TlsMode.VERIFY_CA
    assert adapter.tls_mode(secret("mysql", sslmode="verify-full")) is TlsMode.VERIFY_FULL
