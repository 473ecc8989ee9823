"""Rotation-aware connect, with a fake database and fake time: every fallback path."""

from __future__ import annotations

import json

import psycopg
import pymysql
import pytest

from client_lib import (
    AuthenticationFailed,
    Credentials,
    FallbackPolicy,
    RotationAwareConnector,
    SecretCache,
    is_psycopg_auth_failure,
    is_pymysql_auth_failure,
)

from .test_cache import CountingClient, FakeClock


def secret(password: str, user: str = "app") -> str:
    return json.dumps({"engine": "mysql", "host": "db", "username": user, "password": password})


class Refused(Exception):
    pass


class FakeDb:
    def __init__(self, password: str) -> None:
        self.password = password
        self.down = False
        self.attempts: list[str] = []

    def connect(self, creds: Credentials) -> str:
        self.attempts.append(creds.password)
        if self.down:
            raise ConnectionRefusedError("db is down")
        if creds.password != self.password:
            raise Refused("access denied")
        return f"conn:{creds.password}"


def setup(
    db_password: str, **stages: str
) -> tuple[RotationAwareConnector[str], FakeDb, CountingClient, list[float]]:
    client = CountingClient()
    client.versions["app/db"] = {
        stage: (f"v-{stage}-{pw}", secret(pw)) for stage, pw in stages.items()
    }
    clock = FakeClock()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.now += seconds

    cache = SecretCache(client, clock=clock, ttl=300, jitter=0.0)
    db = FakeDb(db_password)
    connector = RotationAwareConnector(
        cache,
        "app/db",
        db.connect,
        lambda e: isinstance(e, Refused),
        policy=FallbackPolicy(budget=5.0),
        clock=clock,
        sleep=sleep,
    )
    return connector, db, client, sleeps


def test_current_credentials_need_no_fallback() -> None:
    connector, _db, _, _ = setup("new", AWSCURRENT="new")
    assert connector.connect() == "conn:new"
    assert connector.stats.auth_failures == 0


def test_single_user_window_falls_back_to_pending() -> None:
    # setSecret ran: the database has the pending password; AWSCURRENT still holds the old one.
    connector, db, _, _ = setup("new", AWSCURRENT="old", AWSPENDING="new")
    assert connector.connect() == "conn:new"
    assert db.attempts == ["old", "new"]  # the refreshed AWSCURRENT is the refused one: skipped
    assert connector.stats.fallbacks == {"AWSPENDING": 1}
    assert connector.stats.recovered == 1


def test_finished_rotation_is_found_by_refreshing_current() -> None:
    connector, db, client, _ = setup("old", AWSCURRENT="old")
    connector.connect()
    client.versions["app/db"]["AWSCURRENT"] = ("v-new", secret("new"))
    db.password = "new"
    assert connector.connect() == "conn:new"
    assert connector.stats.rotations_detected == 1
    assert connector.stats.fallbacks == {"AWSCURRENT": 1}


def test_previous_is_tried_last() -> None:
    connector, _, _, _ = setup("older", AWSCURRENT="new", AWSPREVIOUS="older")
    assert connector.connect() == "conn:older"
    assert connector.stats.fallbacks == {"AWSPREVIOUS": 1}


def test_fallbacks_can_be_turned_off() -> None:
    connector, db, _, _ = setup("new", AWSCURRENT="old", AWSPENDING="new")
    connector.policy = FallbackPolicy(budget=0.0, try_pending=False, try_previous=False)
    with pytest.raises(AuthenticationFailed):
        connector.connect()
    assert "new" not in db.attempts


def test_other_errors_pass_through_unchanged() -> None:
    connector, db, _, _ = setup("old", AWSCURRENT="old")
    db.down = True
    with pytest.raises(ConnectionRefusedError, match="db is down"):
        connector.connect()
    assert connector.stats.auth_failures == 0


def test_gives_up_after_the_budget_with_jittered_backoff() -> None:
    connector, _, _, sleeps = setup("unknown", AWSCURRENT="old", AWSPENDING="new")
    with pytest.raises(AuthenticationFailed, match="within 5 s") as info:
        connector.connect()
    assert isinstance(info.value.__cause__, Refused)
    assert sum(sleeps) == pytest.approx(5.0, abs=1.0)
    base = 0.05
    for i, seconds in enumerate(sleeps[:-1]):
        expected = min(base * 2**i, 1.0)
        assert 0.5 * expected <= seconds <= 1.5 * expected
    assert "unknown" not in str(info.value)


def test_driver_auth_failure_classification() -> None:
    assert is_pymysql_auth_failure(pymysql.err.OperationalError(1045, "Access denied for user"))
    assert not is_pymysql_auth_failure(pymysql.err.OperationalError(2003, "Can't connect"))
    assert is_psycopg_auth_failure(
        psycopg.OperationalError('FATAL:  password authentication failed for user "app"')
    )
    assert is_psycopg_auth_failure(psycopg.errors.lookup("28P01")("x"))
    assert not is_psycopg_auth_failure(psycopg.OperationalError("Connection refused"))
    assert not is_psycopg_auth_failure(ValueError("password authentication failed"))


def test_many_threads_failing_at_once_cost_one_refresh() -> None:
    connector, _db, client, _ = setup("new", AWSCURRENT="old", AWSPENDING="new")
    for _ in range(8):
        assert connector.connect() == "conn:new"
    # Fake time stands still: every later failure happens "at" the first fetch, which it reuses.
    assert client.gets == 2


def test_async_connector_falls_back_to_pending_and_passes_other_errors() -> None:
    import asyncio

    from client_lib import AsyncRotationAwareConnector

    client = CountingClient()
    client.versions["app/db"] = {
        "AWSCURRENT": ("v-old", secret("old")),
        "AWSPENDING": ("v-new", secret("new")),
    }
    db = FakeDb("new")

    async def connect(creds: Credentials) -> str:
        return db.connect(creds)

    connector = AsyncRotationAwareConnector(
        SecretCache(client, ttl=300), "app/db", connect, lambda e: isinstance(e, Refused)
    )
    assert asyncio.run(connector.connect()) == "conn:new"
    assert connector.stats.fallbacks == {"AWSPENDING": 1}
    db.down = True
    with pytest.raises(ConnectionRefusedError):
        asyncio.run(connector.connect())


def test_a_late_failure_uses_what_another_thread_found() -> None:
    # A connect that started before the rotation fails after another thread recovered: it
    # reuses those credentials, with no Secrets Manager call of its own.
    connector, db, client, _ = setup("new", AWSCURRENT="old", AWSPENDING="new")
    connector.credentials()
    calls_after_other_thread: list[tuple[int, int]] = []

    def while_another_thread_recovers(creds: Credentials) -> str:
        if not calls_after_other_thread:
            calls_after_other_thread.append((-1, -1))
            assert connector.connect() == "conn:new"  # the other thread
            calls_after_other_thread[0] = (client.describes, client.gets)
        return db.connect(creds)

    connector._connect = while_another_thread_recovers
    assert connector.connect() == "conn:new"
    assert (client.describes, client.gets) == calls_after_other_thread[0] == (1, 2)
    # other thread: old (refused), new (AWSPENDING; the refreshed AWSCURRENT is the refused
    # one, not tried again); this one: old (refused), new (shared).
    assert db.attempts == ["old", "new", "old", "new"]
    assert connector.stats.recovered == 2
    db.attempts.clear()
    assert connector.connect() == "conn:new"
    assert db.attempts == ["new"]
