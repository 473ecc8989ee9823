"""Rotation-aware connect: credentials from the cache, and the right fallbacks when they fail.

An authentication failure (PyMySQL error 1045; psycopg's "password authentication failed", or
sqlstate 28P01/28000 when the server gives one) means the credentials may have rotated. The
connector then forces a refresh and tries, in order:

1. AWSCURRENT, freshly fetched (the rotation finished);
2. AWSPENDING (single-user rotation between setSecret and finishSecret: the database already has
   the new password while AWSCURRENT still holds the old one - the case retrying AWSCURRENT alone
   cannot cover);
3. AWSPREVIOUS (a client whose view of Secrets Manager runs ahead of the database),

within a time budget, with jittered backoff between rounds. Credentials refused moments ago are
not tried again in the same round. What another thread found since is tried first, and what
Secrets Manager said after this caller chose its credentials is reused, so a burst of failures
costs one DescribeSecret and one GetSecretValue. Network and other errors are not rotation and
pass through unchanged. Each fallback can be turned off.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .cache import SecretCache, SecretCacheError, SecretValue
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


class _ConnectorBase:
    """What the sync and async connectors share: credentials, rotation detection, fallbacks."""

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        is_auth_failure: Callable[[BaseException], bool],
        policy: FallbackPolicy | None,
        clock: Callable[[], float],
    ) -> None:
        self.cache = cache
        self.secret_id = secret_id
        self._is_auth_failure = is_auth_failure
        self.policy = policy or FallbackPolicy()
        self._clock = clock
        self._lock = threading.Lock()
        self.stats = ConnectStats()
        self.on_rotation: list[Callable[[], None]] = []
        """Called once per change of AWSCURRENT's version, in the thread that noticed it."""
        self._seen_version: str | None = None
        # After recovering with AWSPENDING or AWSPREVIOUS: keep using those credentials (no
        # Secrets Manager call per connect) until they fail or AWSCURRENT reaches that version.
        self._preferred: tuple[Credentials, str] | None = None

    def _first_choice(self, current: SecretValue) -> Credentials:
        """The credentials to try first, given AWSCURRENT's cached value.

        Reading AWSCURRENT on every connect, even while a fallback is preferred, is what keeps
        its entry refreshing and rotations detected.
        """
        credentials = self._credentials_of(current, "AWSCURRENT")
        preferred = self._preferred
        if preferred is None:
            return credentials
        if current.version_id == preferred[1]:
            self._preferred = None  # the rotation finished: AWSCURRENT has that version
            return credentials
        return preferred[0]

    def credentials(self, stage: str = "AWSCURRENT") -> Credentials:
        """The cached credentials at ``stage`` (fetched on a miss)."""
        return self._credentials_of(self.cache.get(self.secret_id, stage), stage)

    def _credentials_of(self, value: SecretValue, stage: str) -> Credentials:
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

    def _found_by_others(self, tried: Credentials) -> Credentials | None:
        """Credentials other than ``tried`` that another thread has found since; no I/O.

        A burst of connects that all started before the rotation fails together; the first to
        recover shares what it found, so the rest need no Secrets Manager call.
        """
        with self._lock:
            preferred = self._preferred
            if preferred is not None and preferred[0] == tried:
                self._preferred = preferred = None
        if preferred is not None:
            return preferred[0]
        current = self.cache.get_if_fresh(self.secret_id)
        if current is None or current.string is None:
            return None
        credentials = self._credentials_of(current, "AWSCURRENT")
        return None if credentials == tried else credentials

    def _stages(self) -> list[str]:
        """What to try, in order, after an authentication failure."""
        out = ["AWSCURRENT"]
        if self.policy.try_pending:
            out.append("AWSPENDING")
        if self.policy.try_previous:
            out.append("AWSPREVIOUS")
        return out

    def _refreshed(self, stage: str, since: float) -> tuple[Credentials, str] | None:
        """(credentials, version) at ``stage`` as Secrets Manager had it after ``since``."""
        try:
            value = self.cache.refresh(self.secret_id, stage, fetched_since=since)
            return self._credentials_of(value, stage), value.version_id
        except SecretCacheError:
            return None

    def _recovered(self, stage: str, found: tuple[Credentials, str]) -> None:
        with self._lock:
            self.stats.recovered += 1
            self.stats.fallbacks[stage] = self.stats.fallbacks.get(stage, 0) + 1
            self._preferred = None if stage == "AWSCURRENT" else found

    def _pause(self, deadline: float, delay: float, last: BaseException) -> tuple[float, float]:
        """(seconds to wait, next delay), or AuthenticationFailed once the budget is spent."""
        remaining = deadline - self._clock()
        if remaining <= 0:
            raise AuthenticationFailed(
                f"no version of secret '{self.secret_id}' logged in within {self.policy.budget:g} s"
            ) from last
        pause = min(remaining, delay * (0.5 + random.random()))  # noqa: S311 - jitter
        return pause, min(delay * 2, self.policy.max_delay)

    def _count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)


class RotationAwareConnector[ConnT](_ConnectorBase):
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
        super().__init__(cache, secret_id, is_auth_failure, policy, clock)
        self._connect = connect
        self._sleep = sleep

    def connect(self) -> ConnT:
        """A connection with the current credentials, falling back across a rotation."""
        self._count("connects")
        # Secrets Manager as seen after this attempt chose its credentials is new enough for
        # the first round: threads failing together then share one DescribeSecret.
        since = self.cache.clock()
        tried = self._first_choice(self.cache.get(self.secret_id))
        try:
            return self._connect(tried)
        except Exception as exc:
            if not self._is_auth_failure(exc):
                raise
            self._count("auth_failures")
            last: BaseException = exc
        refused = {tried}
        shared = self._found_by_others(tried)
        if shared is not None:
            try:
                conn = self._connect(shared)
            except Exception as exc:
                if not self._is_auth_failure(exc):
                    raise
                last = exc
                refused.add(shared)
            else:
                self._count("recovered")
                return conn
        deadline, delay = self._clock() + self.policy.budget, self.policy.base_delay
        while True:
            for stage in self._stages():
                found = self._refreshed(stage, since)
                if found is None or found[0] in refused:
                    continue  # absent, or refused moments ago: no point trying it again now
                try:
                    conn = self._connect(found[0])
                except Exception as exc:
                    if not self._is_auth_failure(exc):
                        raise
                    last = exc
                    refused.add(found[0])
                    continue
                self._recovered(stage, found)
                return conn
            refused, since = set(), self.cache.clock()
            pause, delay = self._pause(deadline, delay, last)
            self._sleep(pause)


class AsyncRotationAwareConnector[ConnT](_ConnectorBase):
    """The same, for asyncio: ``connect`` is a coroutine function.

    Cache hits stay on the event loop; a fetch from Secrets Manager (boto3 blocks) runs in a
    worker thread.
    """

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        connect: Callable[[Credentials], Awaitable[ConnT]],
        is_auth_failure: Callable[[BaseException], bool],
        *,
        policy: FallbackPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(cache, secret_id, is_auth_failure, policy, clock)
        self._connect = connect

    async def current_credentials(self) -> Credentials:
        return self._credentials_of(await self._current_value(), "AWSCURRENT")

    async def _current_value(self) -> SecretValue:
        value = self.cache.get_if_fresh(self.secret_id)
        if value is None:
            value = await asyncio.to_thread(self.cache.get, self.secret_id)
        return value

    async def connect(self) -> ConnT:
        """A connection with the current credentials, falling back across a rotation."""
        self._count("connects")
        # Secrets Manager as seen after this attempt chose its credentials is new enough for
        # the first round: threads failing together then share one DescribeSecret.
        since = self.cache.clock()
        tried = self._first_choice(await self._current_value())
        try:
            return await self._connect(tried)
        except Exception as exc:
            if not self._is_auth_failure(exc):
                raise
            self._count("auth_failures")
            last: BaseException = exc
        refused = {tried}
        shared = self._found_by_others(tried)
        if shared is not None:
            try:
                conn = await self._connect(shared)
            except Exception as exc:
                if not self._is_auth_failure(exc):
                    raise
                last = exc
                refused.add(shared)
            else:
                self._count("recovered")
                return conn
        deadline, delay = self._clock() + self.policy.budget, self.policy.base_delay
        while True:
            for stage in self._stages():
                found = await asyncio.to_thread(self._refreshed, stage, since)
                if found is None or found[0] in refused:
                    continue  # absent, or refused moments ago: no point trying it again now
                try:
                    conn = await self._connect(found[0])
                except Exception as exc:
                    if not self._is_auth_failure(exc):
                        raise
                    last = exc
                    refused.add(found[0])
                    continue
                self._recovered(stage, found)
                return conn
            refused, since = set(), self.cache.clock()
            pause, delay = self._pause(deadline, delay, last)
            await asyncio.sleep(pause)


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


def _psycopg_params(creds: Credentials, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "host": creds.host,
        "port": creds.port,
        "user": creds.username,
        "password": creds.password,
        "dbname": creds.dbname or "postgres",
        **extra,
    }


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
        base = psycopg.Connection.connect.__func__  # type: ignore[attr-defined]
        return base(cls, **_psycopg_params(creds, kwargs))

    return RotationAwareConnector(cache, secret_id, connect, is_psycopg_auth_failure, policy=policy)


def psycopg_async_connector(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connection_class: Any = None,
    **kwargs: Any,
) -> AsyncRotationAwareConnector[Any]:
    """psycopg 3 ``AsyncConnection``s; ``kwargs`` go to ``AsyncConnection.connect``."""
    import psycopg

    cls = connection_class or psycopg.AsyncConnection

    async def connect(creds: Credentials) -> Any:
        base = psycopg.AsyncConnection.connect.__func__  # type: ignore[attr-defined]
        return await base(cls, **_psycopg_params(creds, kwargs))

    return AsyncRotationAwareConnector(
        cache, secret_id, connect, is_psycopg_auth_failure, policy=policy
    )
