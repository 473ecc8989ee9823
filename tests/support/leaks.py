"""Watching for secret values where they must never appear."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import Any

_MIN_WATCHED = 6  # shorter strings occur by chance in ordinary text


class LeakWatch:
    """Secret values registered by a test; ``assert_absent`` fails if any shows up in a text."""

    def __init__(self) -> None:
        self.values: set[str] = set()

    def add(self, *values: str) -> None:
        self.values.update(v for v in values if len(v) >= _MIN_WATCHED)

    def add_secret_string(self, text: str) -> None:
        """Watch the password of a rotation-format SecretString."""
        try:
            data = json.loads(text)
        except ValueError:
            return
        if isinstance(data, dict) and isinstance(data.get("password"), str):
            self.add(data["password"])

    def assert_absent(self, text: str, *, where: str) -> None:
        leaked = [v for v in self.values if v in text]
        assert not leaked, f"{len(leaked)} secret value(s) appeared in {where}"

    def assert_exception_clean(self, exc: BaseException) -> None:
        """No value in the exception's message, nor in any exception it chains to."""
        seen: BaseException | None = exc
        while seen is not None:
            self.assert_absent(str(seen), where=f"{type(seen).__name__} message")
            seen = seen.__cause__ or seen.__context__


class Registry:
    """What the suite-wide guard collects during one test, without the test's help.

    - every password that passes through a boto3 client (CreateSecret, PutSecretValue,
      GetSecretValue, GetRandomPassword), so values generated inside the rotation functions
      are watched too;
    - every exception of our three hierarchies created during the test, to check its message
      and the chain of causes at teardown (str() then, when ``step`` has been set).
    """

    def __init__(self, watch: LeakWatch) -> None:
        self.watch = watch
        self.exceptions: list[BaseException] = []

    def saw_call(self, operation: str, params: dict[str, Any], response: Any) -> None:
        if operation in ("CreateSecret", "PutSecretValue") and "SecretString" in params:
            self.watch.add_secret_string(str(params["SecretString"]))
        if not isinstance(response, dict):
            return
        if operation == "GetSecretValue" and isinstance(response.get("SecretString"), str):
            self.watch.add_secret_string(response["SecretString"])
        if operation == "GetRandomPassword" and isinstance(response.get("RandomPassword"), str):
            self.watch.add(response["RandomPassword"])

    def check_exceptions(self) -> None:
        for exc in self.exceptions:
            self.watch.assert_exception_clean(exc)

    def check_records(self, records: Iterable[logging.LogRecord]) -> None:
        for record in records:
            # Every attribute: the message, its arguments, structured extras, exception text.
            self.watch.assert_absent(repr(vars(record)), where=f"log record {record.name}")
