"""Fixtures shared by every tier.

- ``aws_env``: fake credentials and a region; no endpoint override, so in-process moto intercepts.
- ``leak_watch``: every test registers the secret values it creates; at teardown, nothing the
  test wrote to stdout/stderr (log lines included) may contain one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from keyturn_local.servers import MariaDBServer, MotoServer, PostgresServer
from tests.support.leaks import LeakWatch


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")


@pytest.fixture(autouse=True)
def leak_watch(capfd: pytest.CaptureFixture[str]) -> Iterator[LeakWatch]:
    watch = LeakWatch()
    yield watch
    out, err = capfd.readouterr()
    watch.assert_absent(out + err, where="the test's output and log lines")


# Real servers, started once per session and only when a test asks for them.
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer(statement_log=True) as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer(statement_log=True) as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report figures that tests measure but must not assert (the naive client's failures)."""
    from tests.integration.test_client_rotation import BASELINE

    if BASELINE:
        terminalreporter.section("operations across rotations (reported, not asserted)")
        for line in BASELINE:
            terminalreporter.write_line(line)
