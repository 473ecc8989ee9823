"""How each TLS mode becomes driver settings: nothing ever silently allows plaintext, and no
secret gets less than the function's floor."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from rotation_lambdas import ConfigurationError, ConnectSettings, DatabaseSecret, TlsMode
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.postgres import PostgresAdapter

CA = str(Path(ssl.get_default_verify_paths().cafile or __file__))
ANY_TLS = TlsMode.DISABLE  # a floor that lets each mode through, to test how it is applied


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
    adapter = PostgresAdapter(ConnectSettings(ca_bundle=CA, min_tls_mode=ANY_TLS))
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
    kwargs = MySQLAdapter(ConnectSettings(ca_bundle=CA, min_tls_mode=ANY_TLS)).connect_kwargs(
        secret("mysql", sslmode=mode.value)
    )
    ctx = kwargs["ssl"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.check_hostname is check_hostname
    assert ctx.verify_mode == verify_mode
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert "ssl_disabled" not in kwargs


def test_mysql_disable_is_explicit() -> None:
    kwargs = MySQLAdapter(ConnectSettings(min_tls_mode=ANY_TLS)).connect_kwargs(
        secret("mysql", ssl=False)
    )
    assert kwargs["ssl_disabled"] is True
    assert "ssl" not in kwargs


def test_function_default_applies_when_the_secret_is_silent() -> None:
    adapter = MySQLAdapter(
        ConnectSettings(default_tls_mode=TlsMode.VERIFY_CA, ca_bundle=CA, min_tls_mode=ANY_TLS)
    )
    assert adapter.tls_mode(secret("mysql")) is TlsMode.VERIFY_CA
    assert adapter.tls_mode(secret("mysql", sslmode="verify-full")) is TlsMode.VERIFY_FULL


@pytest.mark.parametrize("adapter_class", [PostgresAdapter, MySQLAdapter])
@pytest.mark.parametrize(
    ("extra", "mode"),
    [
        ({"sslmode": "disable"}, "disable"),
        ({"ssl": False}, "disable"),
        ({"ssl": "false"}, "disable"),
        ({"sslmode": "require"}, "require"),
        ({"sslmode": "verify-ca"}, "verify-ca"),
    ],
)
def test_a_secret_cannot_go_below_the_floor(
    adapter_class: type[PostgresAdapter] | type[MySQLAdapter], extra: dict[str, object], mode: str
) -> None:
    adapter = adapter_class(ConnectSettings(ca_bundle=CA))  # the default floor: verify-full
    engine = "postgres" if adapter_class is PostgresAdapter else "mysql"
    with pytest.raises(ConfigurationError) as info:
        adapter.connect_kwargs(secret(engine, **extra))  # before any connection
    assert f"asks for TLS mode '{mode}'" in str(info.value)
    assert "KEYTURN_TLS_MIN_MODE" in str(info.value)


def test_the_floor_is_a_floor_not_a_mode() -> None:
    adapter = PostgresAdapter(ConnectSettings(ca_bundle=CA, min_tls_mode=TlsMode.VERIFY_CA))
    assert adapter.connect_kwargs(secret("postgres", sslmode="verify-ca"))["sslmode"] == "verify-ca"
    assert adapter.connect_kwargs(secret("postgres"))["sslmode"] == "verify-full"
    with pytest.raises(ConfigurationError, match="'require'"):
        adapter.connect_kwargs(secret("postgres", sslmode="require"))


@pytest.mark.parametrize("adapter_class", [PostgresAdapter, MySQLAdapter])
def test_verify_ca_needs_a_bundle(
    adapter_class: type[PostgresAdapter] | type[MySQLAdapter],
) -> None:
    """verify-ca checks no name: with the system's trust store, any public CA's certificate for
    any name would pass. PostgreSQL's libpq refuses it; the MySQL family must refuse it too."""
    engine = "postgres" if adapter_class is PostgresAdapter else "mysql"
    adapter = adapter_class(ConnectSettings(min_tls_mode=TlsMode.VERIFY_CA))
    with pytest.raises(ConfigurationError, match="needs the database's own CA bundle") as info:
        adapter.connect_kwargs(secret(engine, sslmode="verify-ca"))
    assert "KEYTURN_TLS_CA_BUNDLE" in str(info.value)
    # At set-up when it is the function's own default.
    with pytest.raises(ConfigurationError, match="the function's default TLS mode"):
        adapter_class(ConnectSettings(TlsMode.VERIFY_CA, min_tls_mode=TlsMode.VERIFY_CA))
