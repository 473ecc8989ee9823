"""Fault injection at every point of a rotation: each Secrets Manager call, each database
connect and statement, failing before it, failing after it took effect, or the process dying
after it.

A :class:`FaultPlan` numbers the operations a rotation makes, in order. Run once with no target to
count them; then once per (operation, kind) with that target: the fault fires there, once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import EndpointConnectionError

from rotation_lambdas.adapters import DatabaseAdapter

from .strict_sm import StrictSecretsManager

KINDS = ("fail-before", "fail-after", "die-after")


class ProcessDeath(BaseException):
    """The function's process died at this point: no ``except Exception`` clause runs."""


@dataclass
class FaultPlan:
    target: int | None = None
    kind: str = "fail-before"
    seen: list[str] = field(default_factory=list)
    fired: str | None = None

    def around(
        self,
        label: str,
        call: Callable[[], Any],
        error: Callable[[str], Exception],
        discard: Callable[[Any], None] | None = None,
    ) -> Any:
        """Run ``call`` as operation number ``len(seen)``; fault it if it is the target.

        ``discard`` releases a result a fault after the call throws away (a connection that
        opened: a dead process's sockets close too).
        """
        index = len(self.seen)
        self.seen.append(label)
        hit = index == self.target and self.fired is None
        where = f"#{index} {label}"
        if hit and self.kind == "fail-before":
            self.fired = f"{self.kind} {where}"
            raise error(f"injected: {self.fired}")
        result = call()
        if hit:
            self.fired = f"{self.kind} {where}"
            if discard is not None:
                discard(result)
            if self.kind == "die-after":
                raise ProcessDeath(self.fired)
            raise error(f"injected: {self.fired}")
        return result


def _sm_error(message: str) -> Exception:
    return EndpointConnectionError(endpoint_url=f"https://secretsmanager ({message})")


class FaultySecretsManager(StrictSecretsManager):
    """Every call goes through the plan (AWS's rules still enforced underneath)."""

    def __init__(self, client: Any, plan: FaultPlan) -> None:
        super().__init__(client)
        self.plan = plan

    def __getattr__(self, name: str) -> Any:
        attr = super().__getattr__(name)
        if not callable(attr) or name in ("exceptions", "meta"):
            return attr
        return lambda **kwargs: self.plan.around(
            f"SecretsManager.{name}", lambda: attr(**kwargs), _sm_error
        )

    def put_secret_value(self, **kwargs: Any) -> Any:
        return self.plan.around(
            "SecretsManager.put_secret_value",
            lambda: super(FaultySecretsManager, self).put_secret_value(**kwargs),
            _sm_error,
        )

    def rotate_secret(self, **kwargs: Any) -> Any:
        return super().rotate_secret(**kwargs)  # the service's call, not the function's


class _Cursor:
    def __init__(self, cursor: Any, plan: FaultPlan, error: Callable[[str], Exception]) -> None:
        self._cursor, self._plan, self._error = cursor, plan, error

    def __enter__(self) -> _Cursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def execute(self, statement: Any, params: Any = None) -> Any:
        return self._plan.around(
            f"db: {_first_words(statement)}",
            lambda: self._cursor.execute(statement, params),
            self._error,
        )


class _Connection:
    """A DB-API connection whose statements go through the plan."""

    def __init__(self, conn: Any, plan: FaultPlan, error: Callable[[str], Exception]) -> None:
        self._conn, self._plan, self._error = conn, plan, error

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def execute(self, statement: Any, params: Any = None) -> Any:  # psycopg
        return self._plan.around(
            f"db: {_first_words(statement)}",
            lambda: self._conn.execute(statement, params),
            self._error,
        )

    def cursor(self, *args: Any, **kwargs: Any) -> _Cursor:  # PyMySQL
        return _Cursor(self._conn.cursor(*args, **kwargs), self._plan, self._error)

    def close(self) -> None:
        self._conn.close()


def _first_words(statement: Any) -> str:
    text = statement if isinstance(statement, str) else type(statement).__name__
    return " ".join(str(text).split()[:3])


def inject_into_adapter(adapter: DatabaseAdapter[Any], plan: FaultPlan) -> None:
    """Route ``adapter``'s connects and statements through ``plan``, with driver errors."""
    if adapter.family.value == "postgresql":
        import psycopg

        def error(message: str) -> Exception:
            return psycopg.OperationalError(
                f"server closed the connection unexpectedly ({message})"
            )
    else:
        import pymysql

        def error(message: str) -> Exception:
            return pymysql.err.OperationalError(2013, f"Lost connection during query ({message})")

    real_open = adapter.open

    def open_(secret: Any) -> Any:
        conn = plan.around(
            f"db: connect as {secret.username}", lambda: real_open(secret), error, adapter.close
        )
        return _Connection(conn, plan, error)

    adapter.open = open_  # type: ignore[method-assign]
