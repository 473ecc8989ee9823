"""Rotation-aware connect: credentials from the cache, and the right fallbacks when they fail.

A connector runs the steps of :func:`~client_lib.fallback.plan` (which versions to try, in which
order, how many) - in the caller's thread (:class:`RotationAwareConnector`) or on the event loop
(:class:`AsyncRotationAwareConnector`), one algorithm for both. A refused login is recognised
without trusting the server's language (:mod:`keyturn_core.login`); network, TLS and other errors
are not rotation and are raised at once, unchanged. What it raises itself subclasses the driver's
``OperationalError`` (see the driver modules), so existing ``except`` clauses keep working.

When AWSCURRENT changes version, the ``on_rotation`` hooks run (a pool drains); a hook that
raises is logged and does not fail the connect.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from typing import Any

from keyturn_core.login import LoginFailure

from .cache import SecretCache, SecretValue
from .credentials import Credentials
from .errors import (
    AccountLocked,
    AuthenticationFailed,
    ClientLibError,
    SecretCacheError,
    SecretValueError,
)
from .fallback import (
    AWSCURRENT,
    AWSPENDING,
    AWSPREVIOUS,
    Attempt,
    FallbackPolicy,
    FallbackState,
    Fetch,
    OutOfAttempts,
    Result,
    plan,
)

log = logging.getLogger("keyturn.client")

type Overrides = Mapping[str, Any]
type Classify = Callable[[BaseException], LoginFailure | None]
type Defaults = Mapping[str, Any] | Callable[[Overrides], Mapping[str, Any]]
type Target = Callable[[Credentials, Overrides], tuple[str, object]]


def _target(credentials: Credentials, overrides: Overrides) -> tuple[str, object]:
    """The server a connect reaches: the secret's, unless this call names another."""
    return str(overrides.get("host") or credentials.host), overrides.get("port") or credentials.port


def _keep(exc: BaseException) -> None:
    """A driver whose errors hold nothing secret: nothing to scrub."""


_LIVE_CONNECTORS: weakref.WeakSet[_ConnectorBase] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for connector in list(_LIVE_CONNECTORS):
        connector._lock = threading.Lock()  # the parent's threads may have held it


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@dataclass(frozen=True, slots=True)
class DriverErrors:
    """The error classes a connector raises: the driver modules give subclasses that are also the
    driver's ``OperationalError``."""

    authentication_failed: type[AuthenticationFailed] = AuthenticationFailed
    account_locked: type[AccountLocked] = AccountLocked
    secret_unavailable: type[SecretCacheError] = SecretCacheError
    secret_invalid: type[SecretValueError] = SecretValueError
    scrub: Callable[[BaseException], None] = _keep
    """Removes what a driver's error holds of the credentials tried (psycopg: the password)."""


@dataclass
class ConnectStats:
    """Counters: readable by the application, exportable as metrics."""

    connects: int = 0
    refused_logins: int = 0
    recovered: int = 0  # connects that met a refusal and logged in
    # connects that logged in with another stage than AWSCURRENT, by stage
    rotations_detected: int = 0
    hook_errors: int = 0
    fallbacks: dict[str, int] = field(default_factory=dict)

    @property
    def auth_failures(self) -> int:
        """Refused logins (the name earlier versions used)."""
        return self.refused_logins


class _ConnectorBase:
    """What the sync and async connectors share: credentials, rotation detection, bookkeeping."""

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        classify: Classify,
        *,
        policy: FallbackPolicy | None,
        defaults: Defaults | None,
        errors: DriverErrors,
        target: Target | None = None,
    ) -> None:
        self.cache = cache
        self._target = target or _target
        self.secret_id = secret_id
        self.policy = policy or FallbackPolicy()
        self._classify = classify
        if callable(defaults):
            self._defaults_for: Callable[[Overrides], Mapping[str, Any]] = defaults
        else:
            fixed = dict(defaults or {})
            self._defaults_for = lambda overrides: fixed
        self.errors = errors
        self._stages = [AWSCURRENT]
        self._stages += [AWSPENDING] if self.policy.try_pending else []
        self._stages += [AWSPREVIOUS] if self.policy.try_previous else []
        self._lock = threading.Lock()
        self.stats = ConnectStats()
        self.on_rotation: list[Callable[[], None]] = []
        """Called once per change of AWSCURRENT's version, in the thread that noticed it."""
        self._seen_version: str | None = None
        _LIVE_CONNECTORS.add(self)

    def _state_for(
        self, credentials: Credentials, overrides: Overrides | None = None
    ) -> FallbackState:
        """What every connector of this cache knows of this secret's versions at the server a
        connect with ``overrides`` reaches: shared, so a refusal one of them met is not tried
        again by the others; per server, so a lagging replica's refusal says nothing about the
        writer; made anew after a fork."""
        host, port = self._target(credentials, overrides or {})
        key = ("keyturn.fallback", self.secret_id, host.lower(), str(port))
        return self.cache.shared(key, lambda: FallbackState(self.cache.clock))

    def credentials(self, stage: str = AWSCURRENT) -> Credentials:
        """The cached credentials at ``stage`` (fetched on a miss)."""
        try:
            value = self.cache.get(self.secret_id, stage)
        except SecretCacheError as exc:
            raise self.errors.secret_unavailable(
                str(exc), transient=exc.transient, code=exc.code
            ) from exc
        if stage == AWSCURRENT:
            self._note_current(value.version_id)
        return self._parse(value)

    def _parse(self, value: SecretValue, overrides: Overrides | None = None) -> Credentials:
        """The credentials of ``value``; what the secret lacks (an RDS-managed secret holds only
        a username and password) comes from the connection arguments of this call."""
        if value.string is None:
            raise self.errors.secret_invalid(f"secret '{self.secret_id}' holds binary data")
        defaults = self._defaults_for(overrides or {})
        try:
            return Credentials.from_secret_string(value.string, defaults=dict(defaults))
        except SecretValueError as exc:
            raise self.errors.secret_invalid(f"secret '{self.secret_id}': {exc}") from None

    def _note_current(self, version_id: str) -> None:
        """Record AWSCURRENT's version; a change is a rotation: run the hooks, once."""
        with self._lock:
            previous, self._seen_version = self._seen_version, version_id
            changed = previous is not None and previous != version_id
            if changed:
                self.stats.rotations_detected += 1
        if not changed:
            return
        for hook in list(self.on_rotation):
            try:
                hook()
            except Exception:
                with self._lock:
                    self.stats.hook_errors += 1
                log.exception("an on_rotation hook of secret '%s' failed", self.secret_id)

    def _start(
        self, current: SecretValue, started: float, overrides: Overrides
    ) -> tuple[Generator[Any, Any, Any], FallbackState]:
        self._note_current(current.version_id)
        with self._lock:
            self.stats.connects += 1
        state = self._state_for(self._parse(current, overrides), overrides)
        steps = plan(
            state,
            self.policy,
            current,
            lambda value: self._parse(value, overrides),
            started,
            self.secret_id,
        )
        return steps, state

    def _fetched(self, step: Fetch) -> dict[str, SecretValue]:
        """Every stage as Secrets Manager had it after ``step.since``; a stage that could not be
        fetched is absent ("nothing to try"). Raises ``SecretCacheError`` when Secrets Manager
        could not be asked at all."""
        seen = self.cache.stage_values(self.secret_id, step.since, self._stages)
        if seen is None:  # a source that cannot describe: stage by stage
            seen = {}
            for stage in self._stages:
                try:
                    seen[stage] = self.cache.refresh(
                        self.secret_id, stage, fetched_since=step.since
                    )
                except SecretCacheError:
                    continue
        if AWSCURRENT in seen:
            self._note_current(seen[AWSCURRENT].version_id)
        return seen

    def _outcome(self, step: Attempt, exc: BaseException) -> Result:
        """A failed attempt: a refusal to remember, or an error to raise as it is."""
        if isinstance(exc, ClientLibError):
            raise exc  # ours (the secret, the arguments), raised by the connect function
        if isinstance(exc, UnicodeError):
            # The driver could not encode the credentials: its message quotes them.
            raise self.errors.secret_invalid(
                f"secret '{self.secret_id}': the {step.stage} credentials hold characters the "
                "driver cannot send"
            ) from None
        failure = self._classify(exc)
        self.errors.scrub(exc)
        if failure in (LoginFailure.AUTHENTICATION, LoginFailure.PROBABLY_AUTHENTICATION):
            with self._lock:
                self.stats.refused_logins += 1
            log.info(
                "secret '%s': the %s credentials (version %s) were refused",
                self.secret_id,
                step.stage,
                step.version,
            )
            return Result(refused=exc, confirmed=failure is LoginFailure.AUTHENTICATION)
        if failure is LoginFailure.LOCKED:
            raise self.errors.account_locked(
                f"the account of secret '{self.secret_id}' is locked or blocked by the database"
            ) from exc
        raise exc

    def _succeeded(self, step: Attempt, refused_before: int) -> None:
        with self._lock:
            if step.stage != AWSCURRENT:
                self.stats.fallbacks[step.stage] = self.stats.fallbacks.get(step.stage, 0) + 1
            if refused_before:
                self.stats.recovered += 1
        if refused_before:
            log.info(
                "secret '%s': logged in with the %s credentials (version %s) after a refusal",
                self.secret_id,
                step.stage,
                step.version,
            )

    def _out_of_attempts(
        self, exc: OutOfAttempts, fetch_error: SecretCacheError | None
    ) -> BaseException:
        if not exc.confirmed and exc.last is not None:
            # Refused in no known language and nothing else logged in: not known to be the
            # credentials, so the driver's own error, as it was.
            return exc.last
        if exc.busy:
            # Nothing was refused: other callers held the credentials' probe until the budget
            # ran out (a slow or unreachable server). Transient, not an authentication failure.
            error: BaseException = self.errors.secret_unavailable(str(exc), transient=True)
        elif fetch_error is not None:
            # What else Secrets Manager holds is unknown: not "refused", unavailable.
            error = self.errors.secret_unavailable(
                f"no stored version of secret '{self.secret_id}' logged in, and Secrets Manager "
                f"could not be asked for others: {fetch_error}",
                transient=fetch_error.transient,
                code=fetch_error.code,
            )
            error.__cause__ = fetch_error
        else:
            error = self.errors.authentication_failed(str(exc))
            error.__cause__ = exc.last
        log.warning("%s", error)
        return error

    @staticmethod
    def _verdict_with(step: Attempt, lock: threading.Lock) -> tuple[bool, threading.Lock | None]:
        """With the probe lock held: what other callers settled meanwhile. Returns whether to
        attempt, and the lock if still held (released when another caller settled it)."""
        verdict = step.verdict()
        if verdict == "unknown":
            return True, lock
        lock.release()
        return verdict != "refused", None

    def _fetch_or_error(
        self, step: Fetch
    ) -> tuple[dict[str, SecretValue], SecretCacheError | None]:
        try:
            return self._fetched(step), None
        except SecretCacheError as exc:
            return {}, exc


class RotationAwareConnector[ConnT](_ConnectorBase):
    """Opens connections with a secret's credentials, surviving its rotation.

    ``connect(credentials, timeout, overrides)`` opens one connection within ``timeout`` seconds
    (``overrides``: keyword arguments of this call); ``classify`` tells a refused login from every
    other error. :func:`psycopg_connector` and :func:`pymysql_connector` build one for you.
    """

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        connect: Callable[[Credentials, float, Overrides], ConnT],
        classify: Classify,
        *,
        policy: FallbackPolicy | None = None,
        defaults: Defaults | None = None,
        errors: DriverErrors = DriverErrors(),
        target: Target | None = None,
    ) -> None:
        super().__init__(
            cache,
            secret_id,
            classify,
            policy=policy,
            defaults=defaults,
            errors=errors,
            target=target,
        )
        self._connect = connect

    def connect(self, **overrides: Any) -> ConnT:
        """A connection with the current credentials, falling back across a rotation.

        ``overrides`` are connection arguments for this call only (host, port, database, TLS...);
        the user and password always come from the secret.
        """
        started = self.cache.clock()
        try:
            current = self.cache.get(self.secret_id)
        except SecretCacheError as exc:
            raise self.errors.secret_unavailable(
                str(exc), transient=exc.transient, code=exc.code
            ) from exc
        steps, state = self._start(current, started, overrides)
        reply: Any = None
        refused = 0
        fetch_error: SecretCacheError | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                conn: ConnT = done.value
                return conn
            except OutOfAttempts as exc:
                raise self._out_of_attempts(exc, fetch_error)  # noqa: B904 - its cause is set
            if isinstance(step, Fetch):
                reply, error = self._fetch_or_error(step)
                fetch_error = error or fetch_error
                continue
            reply = self._attempt(step, overrides, state)
            if reply.refused is not None:
                refused += 1
            elif reply.connection is not None:
                self._succeeded(step, refused)

    @staticmethod
    def _proven(step: Attempt) -> bool:
        """Past the refusal limit: wait (up to ``step.proof_wait``) for another caller to log in
        with these credentials."""
        deadline = time.monotonic() + step.proof_wait
        pause = 0.005
        while (verdict := step.verdict()) == "unknown" and time.monotonic() < deadline:
            time.sleep(pause)
            pause = min(pause * 2, 0.05)
        return verdict == "good"

    def _attempt(self, step: Attempt, overrides: Overrides, state: FallbackState) -> Result:
        began = time.monotonic()
        if step.proven_only and not self._proven(step):
            return Result()
        lock = state.probe_lock(step.version) if step.exclusive else None
        if lock is not None:
            if not lock.acquire(timeout=step.timeout):
                return Result()  # another caller is still trying them: nothing settled in time
            go_on, lock = self._verdict_with(step, lock)
            if not go_on:
                return Result()
        # What waiting for other callers used comes off this attempt's share of the budget.
        timeout = step.timeout - (time.monotonic() - began)
        try:
            if timeout <= 0:
                return Result()
            try:
                return Result(connection=self._connect(step.credentials, timeout, overrides))
            except Exception as exc:  # noqa: BLE001 - classified: a refusal, or raised as it is
                return self._outcome(step, exc)
        finally:
            if lock is not None:
                lock.release()


class AsyncRotationAwareConnector[ConnT](_ConnectorBase):
    """The same, for asyncio: ``connect`` is a coroutine function.

    Cache hits stay on the event loop; a fetch from Secrets Manager (boto3 blocks) runs on the
    cache's own small thread pool, never the loop's default executor (``getaddrinfo`` uses that).
    """

    def __init__(
        self,
        cache: SecretCache,
        secret_id: str,
        connect: Callable[[Credentials, float, Overrides], Awaitable[ConnT]],
        classify: Classify,
        *,
        policy: FallbackPolicy | None = None,
        defaults: Defaults | None = None,
        errors: DriverErrors = DriverErrors(),
        target: Target | None = None,
    ) -> None:
        super().__init__(
            cache,
            secret_id,
            classify,
            policy=policy,
            defaults=defaults,
            errors=errors,
            target=target,
        )
        self._connect = connect

    async def _in_thread[T](self, function: Callable[..., T], *args: Any) -> T:
        try:
            executor = self.cache.executor
            waiting = asyncio.get_running_loop().run_in_executor(executor, function, *args)
        except SecretCacheError as exc:
            raise self.errors.secret_unavailable(str(exc)) from exc
        except RuntimeError as exc:  # the cache's pool was shut down meanwhile
            raise self.errors.secret_unavailable("the secret cache is closed") from exc
        try:
            return await waiting
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # this task was cancelled
            # close() dropped the queued job: not a cancellation of the caller.
            raise self.errors.secret_unavailable("the secret cache was closed") from None

    async def current_credentials(self) -> Credentials:
        return self._parse(await self._current_value())

    async def _current_value(self) -> SecretValue:
        value = self.cache.get_if_fresh(self.secret_id)
        if value is None:
            try:
                value = await self._in_thread(self.cache.get, self.secret_id)
            except SecretCacheError as exc:
                raise self.errors.secret_unavailable(
                    str(exc), transient=exc.transient, code=exc.code
                ) from exc
        self._note_current(value.version_id)
        return value

    async def connect(self, **overrides: Any) -> ConnT:
        """A connection with the current credentials, falling back across a rotation."""
        started = self.cache.clock()
        steps, state = self._start(await self._current_value(), started, overrides)
        reply: Any = None
        refused = 0
        fetch_error: SecretCacheError | None = None
        while True:
            try:
                step = steps.send(reply)
            except StopIteration as done:
                conn: ConnT = done.value
                return conn
            except OutOfAttempts as exc:
                raise self._out_of_attempts(exc, fetch_error)  # noqa: B904 - its cause is set
            if isinstance(step, Fetch):
                try:
                    reply, error = await self._in_thread(self._fetch_or_error, step)
                except SecretCacheError as exc:  # the cache's pool was closed meanwhile
                    reply, error = {}, exc
                fetch_error = error or fetch_error
                continue
            reply = await self._attempt(step, overrides, state)
            if reply.refused is not None:
                refused += 1
            elif reply.connection is not None:
                self._succeeded(step, refused)

    @staticmethod
    async def _proven(step: Attempt) -> bool:
        """As the sync connector's, polling on the event loop."""
        deadline = time.monotonic() + step.proof_wait
        pause = 0.005
        while (verdict := step.verdict()) == "unknown" and time.monotonic() < deadline:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.05)
        return verdict == "good"

    async def _acquire(self, lock: threading.Lock, timeout: float) -> bool:
        """Wait for ``lock`` on the loop itself, polling: no thread is tied up while another
        caller tries those credentials, and a cancelled wait holds nothing."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = 0.005
        while not lock.acquire(blocking=False):
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(pause, remaining))
            pause = min(pause * 2, 0.05)
        return True

    async def _attempt(self, step: Attempt, overrides: Overrides, state: FallbackState) -> Result:
        began = time.monotonic()
        if step.proven_only and not await self._proven(step):
            return Result()
        lock = state.probe_lock(step.version) if step.exclusive else None
        if lock is not None:
            if not await self._acquire(lock, step.timeout):
                return Result()
            go_on, lock = self._verdict_with(step, lock)
            if not go_on:
                return Result()
        timeout = step.timeout - (time.monotonic() - began)
        try:
            if timeout <= 0:
                return Result()
            try:
                conn = await self._connect(step.credentials, timeout, overrides)
            except Exception as exc:  # noqa: BLE001 - classified: a refusal, or raised as it is
                return self._outcome(step, exc)
            return Result(connection=conn)
        finally:
            if lock is not None:
                lock.release()


__all__ = [
    "AsyncRotationAwareConnector",
    "ConnectStats",
    "DriverErrors",
    "FallbackPolicy",
    "RotationAwareConnector",
]
