"""verify-full through a DNS alias: what the resolver's answer becomes (no sockets)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from keyturn_core.tls import ssl_context
from rotation_lambdas import ConnectSettings, DatabaseSecret, NetworkError, TlsError, TlsMode
from rotation_lambdas.adapters.canonical_name import CanonicalTarget, canonical_target
from rotation_lambdas.adapters.mysql import MySQLAdapter
from rotation_lambdas.adapters.postgres import PostgresAdapter
from rotation_lambdas.settings import ENV_TLS_VERIFY_CANONICAL_NAME

RDS = "mydb.abc123.eu-west-1.rds.amazonaws.com"


def answering(canonical: str, address: str = "10.0.0.7") -> Any:
    calls: list[tuple[Any, ...]] = []

    def resolve(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        calls.append((host, port, kwargs))
        assert kwargs["flags"] & socket.AI_CANONNAME
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, canonical, (address, port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.8", port)),
        ]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def test_an_alias_gives_its_canonical_name_and_the_address_given_with_it() -> None:
    target = canonical_target("db.internal.example", 5432, answering(RDS + "."))
    assert target == CanonicalTarget(RDS, "10.0.0.7")


@pytest.mark.parametrize("host", ["DB.internal.example", "db.internal.example."])
def test_a_name_that_is_its_own_canonical_name_changes_nothing(host: str) -> None:
    assert canonical_target(host, 5432, answering("db.internal.example")) is None
    assert canonical_target(host, 5432, answering("")) is None  # no canonical name given


@pytest.mark.parametrize("host", ["10.1.2.3", "::1"])
def test_an_ip_address_is_not_resolved(host: str) -> None:
    def resolve(*_: Any, **__: Any) -> Any:
        raise AssertionError("resolved an IP address")

    assert canonical_target(host, 5432, resolve) is None


@pytest.mark.parametrize(
    "canonical", ["evil host", "a" * 64 + ".example", "x.example/../y", "-x.example", "ü.example"]
)
def test_a_canonical_name_that_is_not_a_host_name_is_refused(canonical: str) -> None:
    with pytest.raises(TlsError, match="not a host name"):
        canonical_target("db.internal.example", 5432, answering(canonical))


def test_a_name_that_does_not_resolve_is_a_network_error_naming_it() -> None:
    def resolve(*_: Any, **__: Any) -> Any:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(NetworkError, match=r"db\.internal\.example could not be resolved"):
        canonical_target("db.internal.example", 5432, resolve)


def secret(engine: str, mode: str | None = None) -> DatabaseSecret:
    extra = f', "sslmode": "{mode}"' if mode else ""
    return DatabaseSecret.parse(
        f'{{"engine": "{engine}", "host": "db.internal.example", "username": "app", '
        f'"password": "pw"{extra}}}'
    )


@pytest.fixture
def aliased(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", answering(RDS))


def test_postgres_verifies_the_canonical_name_and_connects_to_its_address(aliased: None) -> None:
    on = PostgresAdapter(ConnectSettings.from_env({ENV_TLS_VERIFY_CANONICAL_NAME: "true"}))
    kwargs = on.connect_kwargs(secret("postgres"))
    assert (kwargs["host"], kwargs["hostaddr"], kwargs["sslmode"]) == (
        RDS,
        "10.0.0.7",
        "verify-full",
    )
    off = PostgresAdapter(ConnectSettings.from_env({}))
    assert off.connect_kwargs(secret("postgres"))["host"] == "db.internal.example"
    assert "hostaddr" not in off.connect_kwargs(secret("postgres"))


def test_mysql_connects_to_the_address_and_verifies_the_canonical_name(aliased: None) -> None:
    on = MySQLAdapter(ConnectSettings.from_env({ENV_TLS_VERIFY_CANONICAL_NAME: "true"}))
    kwargs = on.connect_kwargs(secret("mysql"))
    assert kwargs["host"] == "10.0.0.7"
    # PyMySQL passes the host it connected to (the address); the context verifies the name.
    ctx = kwargs["ssl"]
    assert ctx.check_hostname
    with socket.socket() as unconnected:
        wrapped = ctx.wrap_socket(
            unconnected, server_hostname="10.0.0.7", do_handshake_on_connect=False
        )
        assert wrapped.server_hostname == RDS
        wrapped.detach()
    off = MySQLAdapter(ConnectSettings.from_env({}))
    assert off.connect_kwargs(secret("mysql"))["host"] == "db.internal.example"


@pytest.mark.parametrize("mode", ["verify-ca", "require"])
def test_only_verify_full_looks_at_names(monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    def resolve(*_: Any, **__: Any) -> Any:
        raise AssertionError("resolved for a mode that verifies no name")

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    settings = ConnectSettings(
        min_tls_mode=TlsMode.REQUIRE, verify_canonical_name=True, ca_bundle=__file__
    )
    assert PostgresAdapter(settings).connect_kwargs(secret("postgres", mode))["host"] == (
        "db.internal.example"
    )


def test_without_a_server_name_the_context_is_the_standard_one() -> None:
    ctx = ssl_context(TlsMode.VERIFY_FULL, None)
    assert ctx is not None
    assert "wrap_socket" not in vars(ctx)
