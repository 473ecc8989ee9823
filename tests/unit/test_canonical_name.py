"""verify-full through a DNS alias: what the resolver's answer becomes (no sockets)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from keyturn_core.tls import ssl_context
from keyturn_local.certs import make_ca
from rotation_lambdas import (
    ConfigurationError,
    ConnectSettings,
    DatabaseSecret,
    NetworkError,
    TlsError,
    TlsMode,
)
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.postgres import PostgresAdapter
from rotation_lambdas.canonical_name import CanonicalTarget, canonical_target, parse_suffixes
from rotation_lambdas.settings import (
    ENV_TLS_CANONICAL_NAME_SUFFIXES,
    ENV_TLS_VERIFY_CANONICAL_NAME,
)

RDS = "mydb.abc123.eu-west-1.rds.amazonaws.com"
EC2 = "ec2-3-4-5-6.eu-west-1.compute.amazonaws.com"


def answering(canonical: str, *aliases: str, address: str = "10.0.0.7") -> Any:
    def resolve(host: str) -> tuple[str, list[str], list[str]]:
        return canonical, [host, *aliases], [address, "10.0.0.8"]

    return resolve


def test_an_alias_of_an_rds_endpoint_gives_that_endpoint_and_the_address() -> None:
    target = canonical_target("db.internal.example", resolve=answering(RDS + "."))
    assert target == CanonicalTarget(RDS, "10.0.0.7")


def test_a_china_endpoint_is_under_the_default_suffixes() -> None:
    china = "mydb.abc123.rds.cn-north-1.amazonaws.com.cn"
    assert canonical_target("db.internal.example", resolve=answering(china)) == (
        CanonicalTarget(china, "10.0.0.7")
    )


def test_the_first_rds_name_on_the_chain_not_its_last() -> None:
    """A public RDS endpoint is itself a CNAME of an EC2 name its certificate lacks."""
    target = canonical_target("db.internal.example", resolve=answering(EC2, RDS))
    assert target == CanonicalTarget(RDS, "10.0.0.7")


@pytest.mark.parametrize("host", [RDS, RDS.upper(), RDS + ".", "10.1.2.3", "::1"])
def test_an_rds_name_or_an_ip_address_is_not_resolved(host: str) -> None:
    def resolve(_: str) -> Any:
        raise AssertionError("resolved")

    assert canonical_target(host, resolve=resolve) is None


@pytest.mark.parametrize(
    "answer",
    [
        answering("db.internal.example"),  # its own canonical name
        answering(EC2),  # a chain without an RDS name
        answering("rds.amazonaws.com"),  # the suffix itself is not a name under it
        answering("evil.example", "x.rds.amazonaws.com.evil.example"),
    ],
)
def test_a_chain_without_a_name_under_a_suffix_is_verified_as_written(answer: Any) -> None:
    assert canonical_target("db.internal.example", resolve=answer) is None


def test_a_name_under_a_suffix_that_is_not_a_host_name_is_refused() -> None:
    with pytest.raises(TlsError, match="not a host name"):
        canonical_target("db.internal.example", resolve=answering("a..b" + ".rds.amazonaws.com"))


def test_a_name_that_does_not_resolve_is_a_network_error_naming_it() -> None:
    def resolve(_: str) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(NetworkError, match=r"db\.internal\.example could not be resolved"):
        canonical_target("db.internal.example", resolve=resolve)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (".rds.amazonaws.com", (".rds.amazonaws.com",)),
        ("rds.amazonaws.com., .DB.Corp.Example", (".rds.amazonaws.com", ".db.corp.example")),
    ],
)
def test_suffixes_are_parsed(value: str, expected: tuple[str, ...]) -> None:
    assert parse_suffixes(value, "X") == expected


@pytest.mark.parametrize(
    "value",
    ["", " , ", ".com", ".co.uk", ".amazonaws.com", "10.0.0.1", "a..b.c", "*.example.com"],
)
def test_a_suffix_list_that_would_trust_too_much_is_refused(value: str) -> None:
    with pytest.raises(ConfigurationError, match="X"):
        parse_suffixes(value, "X")


def secret(engine: str, mode: str | None = None) -> DatabaseSecret:
    extra = f', "sslmode": "{mode}"' if mode else ""
    return DatabaseSecret.parse(
        f'{{"engine": "{engine}", "host": "db.internal.example", "username": "app", '
        f'"password": "pw"{extra}}}'
    )


@pytest.fixture
def aliased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostbyname_ex", answering(EC2, RDS))


ON = {ENV_TLS_VERIFY_CANONICAL_NAME: "true"}


def test_postgres_verifies_the_rds_name_and_connects_to_its_address(aliased: None) -> None:
    kwargs = PostgresAdapter(ConnectSettings.from_env(ON)).connect_kwargs(secret("postgres"))
    assert (kwargs["host"], kwargs["hostaddr"], kwargs["sslmode"]) == (
        RDS,
        "10.0.0.7",
        "verify-full",
    )
    off = PostgresAdapter(ConnectSettings.from_env({})).connect_kwargs(secret("postgres"))
    assert off["host"] == "db.internal.example"
    assert "hostaddr" not in off


def test_mysql_connects_to_the_address_and_verifies_the_rds_name(aliased: None) -> None:
    kwargs = MySQLAdapter(ConnectSettings.from_env(ON)).connect_kwargs(secret("mysql"))
    assert kwargs["host"] == "10.0.0.7"
    # PyMySQL passes the host it connected to (the address); the context verifies the name.
    ctx = kwargs["ssl"]
    assert ctx.check_hostname
    assert ctx.verify_mode is not None
    with socket.socket() as unconnected:
        wrapped = ctx.wrap_socket(
            unconnected, server_hostname="10.0.0.7", do_handshake_on_connect=False
        )
        assert wrapped.server_hostname == RDS
        wrapped.detach()
    off = MySQLAdapter(ConnectSettings.from_env({})).connect_kwargs(secret("mysql"))
    assert off["host"] == "db.internal.example"


def test_the_suffixes_come_from_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "gethostbyname_ex", answering("pg.db.corp.example"))
    env = ON | {ENV_TLS_CANONICAL_NAME_SUFFIXES: ".db.corp.example"}
    kwargs = PostgresAdapter(ConnectSettings.from_env(env)).connect_kwargs(secret("postgres"))
    assert kwargs["host"] == "pg.db.corp.example"
    default = PostgresAdapter(ConnectSettings.from_env(ON)).connect_kwargs(secret("postgres"))
    assert default["host"] == "db.internal.example"


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
@pytest.mark.parametrize("mode", ["verify-ca", "require"])
def test_only_verify_full_looks_at_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, engine: str, mode: str
) -> None:
    def resolve(_: str) -> Any:
        raise AssertionError("resolved for a mode that verifies no name")

    monkeypatch.setattr(socket, "gethostbyname_ex", resolve)
    ca_bundle, _, _ = make_ca(tmp_path, "ca")
    settings = ConnectSettings(
        min_tls_mode=TlsMode.REQUIRE, verify_canonical_name=True, ca_bundle=str(ca_bundle)
    )
    adapter = PostgresAdapter(settings) if engine == "postgres" else MySQLAdapter(settings)
    assert adapter.connect_kwargs(secret(engine, mode))["host"] == "db.internal.example"


def test_without_a_server_name_the_context_is_the_standard_one() -> None:
    ctx = ssl_context(TlsMode.VERIFY_FULL, None)
    assert ctx is not None
    assert "wrap_socket" not in vars(ctx)
