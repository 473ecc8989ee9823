"""TLS against real servers: verified when right, a TLS error when not, never plaintext instead."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from keyturn_local.certs import make_ca
from keyturn_local.driver import RotationFailed, rotate
from keyturn_local.servers import MariaDBServer, PostgresServer
from keyturn_local.users import create_app_user
from rotation_lambdas import DatabaseSecret, TlsError, TlsMode
from rotation_lambdas.handlers import build_engine, make_adapter
from rotation_lambdas.settings import ENV_TLS_CA_BUNDLE, ConnectSettings
from tests.support.leaks import LeakWatch

from .conftest import ENGINES, DbWorld, Server, family_of

pytestmark = pytest.mark.integration


def tls_in_use(world: DbWorld, secret: DatabaseSecret) -> bool:
    with world.adapter.connect(secret) as conn:
        if world.engine_name == "postgres":
            row = conn.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
            return bool(row[0])
        with conn.cursor() as cur:
            cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
            return bool(cur.fetchone()[1])


def test_verify_full_with_the_right_ca_rotates_over_tls(db: DbWorld) -> None:
    assert db.adapter.tls_mode(db.secret("AWSCURRENT")) is TlsMode.VERIFY_FULL
    db.rotate()
    assert tls_in_use(db, db.secret("AWSCURRENT"))


def test_wrong_ca_fails_as_tls_and_never_falls_back(db: DbWorld, tmp_path: Path) -> None:
    wrong_ca, _, _ = make_ca(tmp_path, "some-other-ca")
    env = {ENV_TLS_CA_BUNDLE: str(wrong_ca)}
    engine = build_engine(family_of(db.engine_name), client=db.client.sm, env=env)
    current = db.secret("AWSCURRENT")
    with pytest.raises(RotationFailed) as info:
        rotate(db.client.sm, db.arn, engine, lambda_arn=db.function_arn, max_attempts=1)
    failed = info.value.report.steps[-1]
    assert failed.step.value == "setSecret"
    assert failed.error is not None
    assert failed.error.startswith("TlsError")
    assert "no plaintext retry" in failed.error
    # The database is unchanged: the current password still logs in, over TLS with the right CA.
    assert db.logs_in(current)
    # A plaintext connection would have worked, so the failure proves there was no fallback.
    plaintext = make_adapter(
        family_of(db.engine_name), ConnectSettings(TlsMode.DISABLE, min_tls_mode=TlsMode.DISABLE)
    )
    with plaintext.connect(current):
        pass


@pytest.fixture(scope="module", params=ENGINES)
def untrusted_servers(request: pytest.FixtureRequest) -> Iterator[tuple[str, Server, Server]]:
    """A server without TLS and one whose certificate names another host."""
    cls: Any = PostgresServer if request.param == "postgres" else MariaDBServer
    with cls(tls=False) as plain, cls(tls_hosts=("db.keyturn.test",)) as misnamed:
        yield request.param, plain, misnamed


def connect_result(
    engine_name: str, server: Server, mode: TlsMode, ca: Path | None, leaks: LeakWatch
) -> object:
    """ "connected", or the TlsError raised, for an application user on ``server``."""
    password = "tls-Password-" + engine_name
    leaks.add(password)
    create_app_user(server, engine_name, "tls_app", password)
    secret = DatabaseSecret.from_mapping(
        {
            "engine": engine_name,
            "host": server.admin.host,
            "port": server.port,
            "username": "tls_app",
            "password": password,
            "sslmode": mode.value,
        }
    )
    settings = ConnectSettings(ca_bundle=str(ca) if ca else None, min_tls_mode=TlsMode.DISABLE)
    adapter = make_adapter(family_of(engine_name), settings)
    try:
        with adapter.connect(secret):
            return "connected"
    except TlsError as exc:
        leaks.assert_exception_clean(exc)
        return exc


def test_server_without_tls_is_refused(
    untrusted_servers: tuple[str, Server, Server], leak_watch: LeakWatch
) -> None:
    engine_name, plain, _ = untrusted_servers
    any_ca = Path(ssl.get_default_verify_paths().cafile or "")  # PostgreSQL verify-ca needs one
    for mode in (TlsMode.REQUIRE, TlsMode.VERIFY_CA, TlsMode.VERIFY_FULL):
        result = connect_result(engine_name, plain, mode, any_ca, leak_watch)
        assert isinstance(result, TlsError), f"{mode.value} connected to a server without TLS"
        assert "TLS failed" in str(result)
    assert connect_result(engine_name, plain, TlsMode.DISABLE, None, leak_watch) == "connected"


def test_certificate_for_another_host_is_refused_by_verify_full(
    untrusted_servers: tuple[str, Server, Server], leak_watch: LeakWatch
) -> None:
    engine_name, _, misnamed = untrusted_servers
    assert misnamed.tls_files is not None
    ca = misnamed.tls_files.ca_cert
    result = connect_result(engine_name, misnamed, TlsMode.VERIFY_FULL, ca, leak_watch)
    assert isinstance(result, TlsError)
    assert connect_result(engine_name, misnamed, TlsMode.VERIFY_CA, ca, leak_watch) == "connected"


def test_secret_written_for_the_official_templates(db: DbWorld) -> None:
    """``"ssl": true`` means verified TLS, as the AWS templates read it."""
    data = {**json.loads(db.client.get_secret_value(SecretId=db.arn)["SecretString"]), "ssl": True}
    secret = DatabaseSecret.from_mapping(data)
    assert secret.tls_mode is TlsMode.VERIFY_FULL
    assert tls_in_use(db, secret)


@pytest.mark.parametrize("weaker", [{"sslmode": "require"}, {"ssl": False}])
def test_a_secret_below_the_tls_floor_is_refused_before_any_connection(
    db: DbWorld, weaker: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whoever may write the secret cannot make the function talk without verified TLS."""
    current = db.secret("AWSCURRENT")
    data = {**json.loads(db.client.get_secret_value(SecretId=db.arn)["SecretString"]), **weaker}
    db.client.put_secret_value(SecretId=db.arn, SecretString=json.dumps(data))
    driver: Any = psycopg if db.engine_name == "postgres" else pymysql
    connects: list[object] = []
    real_connect = driver.connect

    def counting_connect(*args: Any, **kwargs: Any) -> Any:
        connects.append(kwargs)
        return real_connect(*args, **kwargs)

    monkeypatch.setattr(driver, "connect", counting_connect)
    with pytest.raises(RotationFailed) as info:
        db.rotate(max_attempts=1)
    failed = info.value.report.steps[-1]
    assert failed.step.value == "setSecret"
    assert (failed.error or "").startswith("ConfigurationError")
    assert "weaker than the function's minimum 'verify-full'" in (failed.error or "")
    assert connects == []  # refused before any connection
    monkeypatch.undo()
    assert db.logs_in(current)
