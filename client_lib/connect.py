"""Rotation-aware connect: credentials from the cache, and the right fallbacks when they fail.

An authentication failure (PyMySQL error 1045; psycopg's "password authentication failed", or
sqlstate 28P01/28000 when the server gives one) means the credentials may have rotated. The
connector then forces a refresh and tries, in order:

1. AWSCURRENT, freshly fetched (the rotation finished);
2. AWSPENDING (single-user rotation between setSecret and finishSecret: the database already has
   the new password while AWSCURRENT still holds the old one - the case retrying AWSCURRENT alone
   cannot cover);
3. AWSPREVIOUS (a client whose view of Secrets Manager runs ahead of the database),

within a time budget, with jittered backoff between rounds. Network and other errors are not
rotation and pass through unchanged. Each fallback can be turned off.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cache import SecretCache, SecretCacheError
from .credentials import Credentials
from .errors import ClientLibError

AUTH_SQLSTATES = ("28P01", "28000")
MYSQL_ACCESS_DENIED = 1045


class AuthenticationFailed(ClientLibError):
    """No stored version of the secret logged in within the time budget."""


def is_pymysql_auth_failure(exc: BaseException) -> bool:
    """PyMySQL's "Access denied for user" at login."""
    import pymysql

    return (
        isinstance(exc, pymysql.err.OperationalError)
        and bool(exc.args)
        and (exc.args[0] == MYSQL_ACCESS_DENIED)
    )


def is_psycopg_auth_failure(exc: BaseException) -> bool:
    """psycopg's failed password login (no sqlstate at connect time: read the message)."""
    import psycopg

    if not isinstance(exc, psycopg.OperationalError):
        return False
    return getattr(exc, "sqlstate", None) in AUTH_SQLSTATES or (
        "password authentication failed" in str(exc)
    )


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """How hard to try after an authentication failure."""

    budget: float = 10.0
    """Seconds, from the first failure, before giving up."""
    base_delay: float = 0.05
    max_delay: float = 1.0
    recent: float = 1.0
    """A value another thread fetched this many seconds ago counts as freshly refreshed."""
    try_pending: bool = True
    try_previous: bool = True


@dataclass
class ConnectStats:
    """Counters: readable by the application, exportable as metrics."""

    connects: int = 0
    auth_failures: int = 0
    recovered: int = 0
    rotations_detected: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)


class RotationAwareConnector[ConnT]:
    """Opens connections with a secret's credentials, surviving its rotation.

    ``connect`` turns :class:`Credentials` into a connection; ``is_auth_failure`` tells a refused
    login from every other error.
    """

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        connect: Callable[[Credentials], ConnT],
        is_auth_failure: Callable[[BaseException], bool],
        *,
        policy: FallbackPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.cache = cache
        self.secret_id = secret_id
        self._connect = connect
        self._is_auth_failure = is_auth_failure
        self.policy = policy or FallbackPolicy()
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self.stats = ConnectStats()
        self.on_rotation: list[Callable[[], None]] = []
        """Called once per change of AWSCURRENT's version, in the thread that noticed it."""
        self._seen_version: str | None = None

    def credentials(self, stage: str = "AWSCURRENT") -> Credentials:
        value = self.cache.get(self.secret_id, stage)
        if stage == "AWSCURRENT":
            self._note_current(value.version_id)
        if value.string is None:
            raise SecretCacheError(f"secret '{self.secret_id}' holds binary data")
        return Credentials.from_secret_string(value.string)

    def _note_current(self, version_id: str) -> None:
        """Record AWSCURRENT's version; a change is a rotation: run the hooks, once."""
        with self._lock:
            previous, self._seen_version = self._seen_version, version_id
            changed = previous is not None and previous != version_id
            if changed:
                self.stats.rotations_detected += 1
        if changed:
            for hook in list(self.on_rotation):
                hook()

    def connect(self) -> ConnT:
        """A connection with the current credentials, falling back across a rotation."""
        self._count("connects")
        try:
            return self._connect(self.credentials())
        except Exception as exc:
            if not self._is_auth_failure(exc):
                raise
            self._count("auth_failures")
            first = exc
        return self._recover(first)

    def _recover(self, first: BaseException) -> ConnT:
        deadline = self._clock() + self.policy.budget
        last: BaseException = first
        delay = self.policy.base_delay
        while True:
            for stage, refresh in self._candidates():
                try:
                    creds = self._fresh(stage) if refresh else self.credentials(stage)
                except SecretCacheError:
                    continue  # e.g. no AWSPENDING or AWSPREVIOUS version: nothing to try
                try:
                    conn = self._connect(creds)
                except Exception as exc:
                    if not self._is_auth_failure(exc):
                        raise
                    last = exc
                    continue
                self._count("recovered")
                with self._lock:
                    self.stats.fallbacks[stage] = self.stats.fallbacks.get(stage, 0) + 1
                return conn
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise AuthenticationFailed(
                    f"no version of secret '{self.secret_id}' logged in within "
                    f"{self.policy.budget:g} s"
                ) from last
            self._sleep(min(remaining, delay * (0.5 + random.random())))  # noqa: S311 - jitter
            delay = min(delay * 2, self.policy.max_delay)

    def _candidates(self) -> list[tuple[str, bool]]:
        out = [("AWSCURRENT", True)]
        if self.policy.try_pending:
            out.append(("AWSPENDING", True))
        if self.policy.try_previous:
            out.append(("AWSPREVIOUS", True))
        return out

    def _fresh(self, stage: str) -> Credentials:
        value = self.cache.refresh(self.secret_id, stage, not_older_than=self.policy.recent)
        if stage == "AWSCURRENT":
            self._note_current(value.version_id)
        if value.string is None:
            raise SecretCacheError(f"secret '{self.secret_id}' holds binary data")
        return Credentials.from_secret_string(value.string)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


def pymysql_connector(
    cache: SecretCache, secret_id: str, *, policy: FallbackPolicy | None = None, **kwargs: Any
) -> RotationAwareConnector[Any]:
    """PyMySQL connections; ``kwargs`` go to ``pymysql.connect`` (TLS settings, timeouts)."""
    import pymysql

    def connect(creds: Credentials) -> Any:
        return pymysql.connect(
            host=creds.host,
            port=creds.port,
            user=creds.username,
            password=creds.password,
            database=creds.dbname,
            **kwargs,
        )

    return RotationAwareConnector(cache, secret_id, connect, is_pymysql_auth_failure, policy=policy)


def psycopg_connector(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connection_class: Any = None,
    **kwargs: Any,
) -> RotationAwareConnector[Any]:
    """psycopg 3 connections; ``kwargs`` go to ``psycopg.connect`` (sslmode, sslrootcert, ...)."""
    import psycopg

    cls = connection_class or psycopg.Connection

    def connect(creds: Credentials) -> Any:
        # The base implementation, bound to ``cls``: a pool's subclass overrides connect().
        return psycopg.Connection.connect.__func__(  # type: ignore[attr-defined]
            cls,
            host=creds.host,
            port=creds.port,
            user=creds.username,
            password=creds.password,
            dbname=creds.dbname or "postgres",
            **kwargs,
        )

    return RotationAwareConnector(cache, secret_id, connect, is_psycopg_auth_failure, policy=policy)
