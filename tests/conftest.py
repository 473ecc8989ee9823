"""Fixtures shared by every tier.

- ``aws_env``: fake credentials and a region; no endpoint override, so in-process moto intercepts.
- ``leak_watch``: the suite-wide guard. It registers every password that passes through a boto3
  client (and tests add the ones they create); at teardown, no password may appear in what the
  test wrote to stdout/stderr, in any log record, or in the message (and chained causes) of any
  exception of our hierarchies created during the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from botocore.client import BaseClient

from client_lib import ClientLibError
from keyturn_cli import CliError
from keyturn_local.servers import POSTGRES_MAJORS, MariaDBServer, MotoServer, PostgresServer
from keyturn_local.users import admin_postgres
from rotation_lambdas import RotationError
from tests.support.leaks import LeakWatch, Registry


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist (scripts/test): the packaging tier on one worker, so each artifact is
    built once a run; the rest spread over the workers, each with its own servers."""
    for item in items:
        if "tests/packaging/" in item.nodeid:
            item.add_marker(pytest.mark.xdist_group("packaging"))


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SECRETS_MANAGER", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")


@pytest.fixture(autouse=True)
def leak_watch(
    capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[LeakWatch]:
    watch = LeakWatch()
    registry = Registry(watch)
    original_call = getattr(BaseClient, "_make_api_call")  # noqa: B009 - private, untyped

    def watched_call(client: Any, operation: str, params: dict[str, Any]) -> Any:
        registry.saw_call(operation, params, None)
        response = original_call(client, operation, params)
        registry.saw_call(operation, params, response)
        return response

    monkeypatch.setattr(BaseClient, "_make_api_call", watched_call)
    for base in (RotationError, ClientLibError, CliError):
        original_init = base.__init__

        def recording_init(
            exc: BaseException, *args: Any, _init: Any = original_init, **kwargs: Any
        ) -> None:
            _init(exc, *args, **kwargs)
            registry.exceptions.append(exc)

        monkeypatch.setattr(base, "__init__", recording_init)
    yield watch
    out, err = capfd.readouterr()
    watch.assert_absent(out + err, where="the test's output and log lines")
    registry.check_records(caplog.records)
    registry.check_exceptions()


# Real servers, started once per session and only when a test asks for them.
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer(statement_log=True) as server:
        yield server


def _versioned_postgres(major: str) -> Any:
    @pytest.fixture(scope="session")
    def server() -> Iterator[PostgresServer]:
        with PostgresServer(major=major, statement_log=True) as started:
            yield started

    return server


# PostgreSQL 16, 17, 18 (scripts/postgres-versions.txt; no message catalogs): postgres16_server...
for _major in POSTGRES_MAJORS:
    globals()[f"postgres{_major}_server"] = _versioned_postgres(_major)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    with MariaDBServer(statement_log=True) as server:
        yield server


# PostgreSQL answering in German: nothing may depend on the language of the server's messages.
@pytest.fixture(scope="session")
def postgres_server_de() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        with admin_postgres(server) as conn:
            conn.execute("ALTER SYSTEM SET lc_messages = 'de_DE.UTF-8'")
            conn.execute("SELECT pg_reload_conf()")
        # Prove it: a refused login must come back in German, or the tests using this fixture
        # would pass against an English server and show nothing (the locale is bootstrap's job).
        try:
            psycopg.connect(
                host=server.admin.host,
                port=server.port,
                user=server.admin.user,
                password="not-the-password",
                dbname="postgres",
                sslmode="disable",
            ).close()
        except psycopg.OperationalError as exc:
            message = str(exc)
        else:
            raise AssertionError("a wrong password was accepted")
        assert "Passwort-Authentifizierung" in message, (
            f"the server does not answer in German (run scripts/bootstrap as root): {message}"
        )
        yield server


# A second server of each engine, for the tests where a secret points at the wrong one.
@pytest.fixture(scope="session")
def postgres_server_b() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def mariadb_server_b() -> Iterator[MariaDBServer]:
    with MariaDBServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    with MotoServer() as server:
        yield server


# Figures that tests measure but must not assert (the naive client's failures, faults injected):
# kept on each test's report, so they reach the summary from pytest-xdist's workers too.
FIGURE_SECTIONS = {
    "operations": "operations across rotations (reported, not asserted)",
    "faults": "fault injection",
}


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """``figures(section, line)``: a line for the test summary's ``section``."""

    def note(section: str, line: str) -> None:
        assert section in FIGURE_SECTIONS, section
        request.node.user_properties.append((f"figure:{section}", line))

    return note


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures tests noted, by section, in the order the tests ran."""
    lines: dict[str, list[str]] = {section: [] for section in FIGURE_SECTIONS}
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) != "call":
                continue
            for name, value in getattr(report, "user_properties", ()):
                if name.startswith("figure:"):
                    lines[name.removeprefix("figure:")].append(str(value))
    for section, title in FIGURE_SECTIONS.items():
        if lines[section]:
            terminalreporter.section(title)
            for line in sorted(lines[section]):
                terminalreporter.write_line(line)
