"""Watching for secret values where they must never appear."""

from __future__ import annotations

import json

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
