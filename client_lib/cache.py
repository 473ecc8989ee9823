"""A fast, bounded secret cache keyed by secret id and version stage.

- A hit is a dictionary lookup and a clock comparison: no lock, no copy, no I/O.
- Entries are refreshed once per TTL, plus up to ``jitter`` of it (so many processes do not
  refresh in step), in a background thread, while the old value is still served for a grace of
  ``refresh_ahead`` x TTL; however many threads ask, one fetch per key runs at a time (single
  flight). So there is at most one refresh per TTL. A caller never sleeps: it waits only for a
  fetch in flight when it has nothing to serve.
- A refresh first asks the cheap DescribeSecret which version each stage points at; a version the
  cache already holds (under any stage: after a rotation, AWSCURRENT moves to the version it
  fetched as AWSPENDING) costs nothing more, only an unknown one costs a GetSecretValue. A
  forced refresh (``fetched_since``) reuses a DescribeSecret made after that moment, so the
  fallbacks after one failed login (AWSCURRENT, AWSPENDING, AWSPREVIOUS) share one.
- On a transient error (throttling, network, 5xx) the last value keeps being served up to
  ``max_staleness`` seconds after it was fetched; then the error is raised.
- At most ``max_secrets`` entries (and DescribeSecret answers); the least recently used goes first.
- Lifecycle: ``close()`` (or ``with SecretCache(...)``) stops the background threads. After
  ``os.fork()`` the child starts clean: a new executor, no fetch in flight from the parent, and a
  new client when the cache was given a factory (or none); a given client keeps its settings but
  drops the parent's HTTP connections. Every fetch completes its waiters, whatever it raises.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any, Self

from botocore.exceptions import BotoCoreError, ClientError

from keyturn_core.protocol import AWSCURRENT, ROTATION_STAGES, version_with

from .errors import SecretCacheError
from .sources import SecretSource

__all__ = ["CacheStats", "SecretCache", "SecretCacheError", "SecretValue"]

log = logging.getLogger("keyturn.client")

Clock = Callable[[], float]
_TRANSIENT_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServiceError",
        "InternalFailure",
        "ServiceUnavailable",
    }
)


_UNPARSED: Any = object()


@dataclass(frozen=True, slots=True)
class SecretValue:
    """One version of a secret. ``repr`` never shows the value."""

    secret_id: str
    version_id: str
    stages: tuple[str, ...]
    string: str | None = field(repr=False)
    binary: bytes | None = field(repr=False)
    _parsed: Any = field(default=_UNPARSED, repr=False, compare=False)

    def json(self) -> Any:
        """The string parsed as JSON, once per version (callers share it: do not mutate it)."""
        if self._parsed is _UNPARSED:
            if self.string is None:
                raise SecretCacheError(f"secret '{self.secret_id}' holds binary data, not JSON")
            try:
                parsed = json.loads(self.string)
            except ValueError:
                raise SecretCacheError(f"secret '{self.secret_id}' is not valid JSON") from None
            object.__setattr__(self, "_parsed", parsed)
        return self._parsed


@dataclass(frozen=True, slots=True)
class _Description:
    """What one DescribeSecret said: the version each stage points at.

    ``version_stages`` is None for a source that cannot describe but was refreshed at that moment
    (``refresh_secret_now``): its values are then fetched by stage.
    """

    started_at: float
    """The cache clock before the call: the state described is at least this recent."""
    version_stages: Mapping[str, Sequence[str]] | None

    def version_at(self, stage: str) -> str | None:
        return version_with(self.version_stages or {}, stage)


class _Entry:
    __slots__ = ("expires_at", "fetched_at", "last_used", "refresh_at", "value")

    def __init__(self, value: SecretValue, fetched_at: float, ttl: float, grace: float) -> None:
        self.value = value
        self.fetched_at = fetched_at
        self.refresh_at = fetched_at + ttl
        self.expires_at = self.refresh_at + grace
        self.last_used = fetched_at


@dataclass
class CacheStats:
    """Counters an application can read or export as metrics."""

    hits: int = 0
    misses: int = 0
    refreshes: int = 0
    fetches: int = 0
    describes: int = 0
    stale_served: int = 0
    errors: int = 0
    evictions: int = 0


type SourceFactory = Callable[[], SecretSource]
_WORKERS = 4
_LIVE_CACHES: weakref.WeakSet[SecretCache] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for cache in list(_LIVE_CACHES):
        cache._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _default_source() -> SecretSource:
    import boto3

    client: SecretSource = boto3.client("secretsmanager")
    return client


class SecretCache:
    """Cache of secret values by ``(secret_id, stage)``.

    ``client`` is a boto3 Secrets Manager client, any :class:`~client_lib.SecretSource`, or a
    function that makes one (called again in a forked child); None makes a boto3 client.

    Usage::

        with SecretCache(boto3.client("secretsmanager"), ttl=300) as cache:
            cache.get("prod/db").json()["username"]
    """

    def __init__(
        self,
        client: SecretSource | SourceFactory | None = None,
        *,
        ttl: float = 300.0,
        jitter: float = 0.1,
        refresh_ahead: float = 0.2,
        max_staleness: float = 3600.0,
        max_secrets: int = 1024,
        clock: Clock = time.monotonic,
        random: Callable[[], float] | None = None,
        executor: ThreadPoolExecutor | None = None,
    ) -> None:
        if ttl <= 0 or not 0 <= jitter < 1 or not 0 <= refresh_ahead < 1 or max_secrets < 1:
            raise ValueError("ttl > 0, 0 <= jitter < 1, 0 <= refresh_ahead < 1, max_secrets >= 1")
        self._factory: SourceFactory | None
        if client is None:
            self._factory = _default_source
        elif callable(client) and not hasattr(client, "get_secret_value"):
            self._factory = client
        else:
            self._factory = None
        self.client: SecretSource = (
            self._factory() if self._factory is not None else client  # type: ignore[assignment]
        )
        self.ttl, self.jitter, self.refresh_ahead = ttl, jitter, refresh_ahead
        self.max_staleness, self.max_secrets = max_staleness, max_secrets
        self.clock = clock
        if random is None:
            import random as _random

            random = _random.random
        self._random = random
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], Future[_Entry]] = {}
        self._version_inflight: dict[tuple[str, str], Future[SecretValue]] = {}
        self._descriptions: dict[str, _Description] = {}
        # One DescribeSecret in flight per secret: (when it started, its answer).
        self._describe_inflight: dict[str, tuple[float, Future[_Description]]] = {}
        self._shared: dict[Hashable, Any] = {}
        self._lock = threading.Lock()
        self._executor = executor
        self._own_executor = executor is None
        self._closed = False
        self.stats = CacheStats()
        _LIVE_CACHES.add(self)

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop the background threads; later calls that need Secrets Manager raise. Idempotent."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
            waiting: list[Future[Any]] = [
                *self._inflight.values(),
                *self._version_inflight.values(),
                *(future for _, future in self._describe_inflight.values()),
            ]
            self._inflight.clear()
            self._version_inflight.clear()
            self._describe_inflight.clear()
        for future in waiting:
            _settle(future, SecretCacheError("the secret cache was closed"))
        if executor is not None and self._own_executor:
            executor.shutdown(wait=False, cancel_futures=True)

    @property
    def executor(self) -> ThreadPoolExecutor:
        """The cache's own small thread pool (background refreshes, asyncio callers' fetches)."""
        with self._lock:
            if self._closed:
                raise SecretCacheError("the secret cache is closed")
            if self._executor is None:
                self._executor = ThreadPoolExecutor(_WORKERS, thread_name_prefix="keyturn-cache")
                self._own_executor = True
            return self._executor

    def _after_fork(self) -> None:
        """In a forked child: nothing of the parent's threads, locks or sockets is reused."""
        self._lock = threading.Lock()
        self._inflight = {}
        self._version_inflight = {}
        self._describe_inflight = {}
        self._shared = {}  # its locks may have been held by the parent's threads
        self._executor = None  # the parent's threads do not exist here
        self._own_executor = True
        if self._factory is not None:
            self.client = self._factory()
        else:
            _drop_connections(self.client)

    def shared[T](self, key: Hashable, make: Callable[[], T]) -> T:
        """State every user of this cache shares under ``key`` (made once; made anew in a forked
        child): connectors keep what they learn of a secret's versions here, so every connector
        of a process on one cache knows what any of them was refused."""
        with self._lock:
            found = self._shared.get(key)
            if found is None:
                found = self._shared[key] = make()
        value: T = found
        return value

    # -- the hot path ---------------------------------------------------------------------------

    def get(self, secret_id: str, stage: str = AWSCURRENT) -> SecretValue:
        """The cached value; fetched on a miss, refreshed in the background when due."""
        entry = self._entries.get((secret_id, stage))
        if entry is not None:
            now = self.clock()
            if now < entry.refresh_at:
                entry.last_used = now
                self.stats.hits += 1
                return entry.value
        return self._slow_get(secret_id, stage, entry)

    def get_if_fresh(self, secret_id: str, stage: str = AWSCURRENT) -> SecretValue | None:
        """The cached value if it has not expired, else None; never blocks (for asyncio)."""
        entry = self._entries.get((secret_id, stage))
        if entry is None:
            return None
        now = self.clock()
        if now >= entry.expires_at:
            return None
        entry.last_used = now
        self.stats.hits += 1
        if now >= entry.refresh_at:
            self._start_background_refresh((secret_id, stage))
        return entry.value

    def get_string(self, secret_id: str, stage: str = AWSCURRENT) -> str:
        value = self.get(secret_id, stage)
        if value.string is None:
            raise SecretCacheError(f"secret '{secret_id}' holds binary data, not a string")
        return value.string

    def get_json(self, secret_id: str, stage: str = AWSCURRENT) -> Any:
        return self.get(secret_id, stage).json()

    # -- refreshing -----------------------------------------------------------------------------

    def refresh(
        self, secret_id: str, stage: str = AWSCURRENT, *, fetched_since: float | None = None
    ) -> SecretValue:
        """Fetch now (joining a fetch already in flight) and return the fresh value.

        With ``fetched_since`` (a time of this cache's clock), a value fetched at or after that
        moment is fresh enough: threads that failed at the same moment share one fetch, and none
        reuses a value older than its own failure.
        """
        entry = self._entries.get((secret_id, stage))
        if fetched_since is not None and entry is not None and entry.fetched_at >= fetched_since:
            return entry.value
        future = self._fetch_single_flight(
            secret_id, stage, fetched_since, force=fetched_since is None
        )
        return future.result().value

    def peek_version(self, secret_id: str, stage: str = AWSCURRENT) -> str | None:
        """The version id cached for ``(secret_id, stage)``, without fetching; None if absent."""
        entry = self._entries.get((secret_id, stage))
        return None if entry is None else entry.value.version_id

    def invalidate(self, secret_id: str | None = None) -> None:
        """Forget one secret's entries (every stage), or everything."""
        with self._lock:
            for key in [k for k in self._entries if secret_id is None or k[0] == secret_id]:
                del self._entries[key]
            for name in [n for n in self._descriptions if secret_id is None or n == secret_id]:
                del self._descriptions[name]

    def _slow_get(self, secret_id: str, stage: str, entry: _Entry | None) -> SecretValue:
        now = self.clock()
        key = (secret_id, stage)
        if entry is not None and now < entry.expires_at:
            # Due for refresh but still valid: serve it and refresh in the background.
            self.stats.hits += 1
            entry.last_used = now
            self._start_background_refresh(key)
            return entry.value
        self.stats.misses += 1
        future = self._fetch_single_flight(secret_id, stage)
        try:
            return future.result().value
        except SecretCacheError as exc:
            if exc.transient and entry is not None and now - entry.fetched_at <= self.max_staleness:
                self.stats.stale_served += 1
                return entry.value
            raise

    def _start_background_refresh(self, key: tuple[str, str]) -> None:
        with self._lock:
            if self._closed or key in self._inflight or self._fresh(key) is not None:
                return  # closed, running, or done since the caller read the old entry
            future: Future[_Entry] = Future()
            self._inflight[key] = future
        try:
            self.executor.submit(self._run_fetch, key, future, None)
        except (RuntimeError, SecretCacheError) as exc:  # shut down meanwhile
            self._complete(key, future, SecretCacheError(f"no background refresh: {exc}"))

    def _fetch_single_flight(
        self,
        secret_id: str,
        stage: str,
        fetched_since: float | None = None,
        *,
        force: bool = False,
    ) -> Future[_Entry]:
        key = (secret_id, stage)
        with self._lock:
            if self._closed:
                raise SecretCacheError("the secret cache is closed")
            future = self._inflight.get(key)
            if future is not None:
                return future
            future = Future()
            fresh = None if force else self._fresh(key, fetched_since)
            if fresh is not None:  # another thread's fetch finished since the caller looked
                future.set_result(fresh)
                return future
            self._inflight[key] = future
        self._run_fetch(key, future, fetched_since)
        return future

    def _fresh(self, key: tuple[str, str], fetched_since: float | None = None) -> _Entry | None:
        """The entry for ``key`` if it needs no fetch now (call with the lock held)."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if fetched_since is not None:
            return entry if entry.fetched_at >= fetched_since else None
        return entry if self.clock() < entry.refresh_at else None

    def _complete(self, key: tuple[str, str], future: Future[_Entry], error: BaseException) -> None:
        with self._lock:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        _settle(future, error)

    def _run_fetch(
        self, key: tuple[str, str], future: Future[_Entry], fetched_since: float | None
    ) -> None:
        """Fetch and complete ``future``, whatever happens: a waiter never waits forever."""
        try:
            entry = self._fetch(key, self._entries.get(key), fetched_since)
        except SecretCacheError as exc:
            self.stats.errors += 1
            self._complete(key, future, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a source's own bug still completes the waiters
            self.stats.errors += 1
            log.warning("fetching secret '%s' failed unexpectedly: %s", key[0], type(exc).__name__)
            self._complete(key, future, SecretCacheError(f"fetching secret '{key[0]}' failed"))
            return
        except BaseException:
            self._complete(key, future, SecretCacheError(f"fetching secret '{key[0]}' stopped"))
            raise
        self._store(key, entry)
        with self._lock:
            self._inflight.pop(key, None)
        _settle(future, entry)

    def _new_entry(self, value: SecretValue) -> _Entry:
        ttl = self.ttl * (1 + self.jitter * self._random())
        return _Entry(value, self.clock(), ttl, self.refresh_ahead * self.ttl)

    def _describe(self, secret_id: str, fetched_since: float | None) -> _Description | None:
        """A DescribeSecret made after ``fetched_since``, reused if there is one; else a new one,
        joined by every caller that wants one made after the moment it started (single flight).

        A source without DescribeSecret but with ``refresh_secret_now`` is refreshed instead (for
        forced refreshes only); one with neither gives None.
        """
        describe = getattr(self.client, "describe_secret", None)
        refresh_now = getattr(self.client, "refresh_secret_now", None)
        if describe is None and (refresh_now is None or fetched_since is None):
            return None
        with self._lock:
            recent = self._descriptions.get(secret_id)
            if (
                fetched_since is not None
                and recent is not None
                and recent.started_at >= fetched_since
            ):
                return recent
            flight = self._describe_inflight.get(secret_id)
            started_at = self.clock()
            if flight is not None and (fetched_since is None or flight[0] >= fetched_since):
                future, owner = flight[1], False
            else:
                future, owner = Future(), True
                self._describe_inflight[secret_id] = (started_at, future)
        if not owner:
            return future.result()
        try:
            self.stats.describes += 1
            if describe is not None:
                response = describe(SecretId=secret_id)
                description = _Description(started_at, response.get("VersionIdsToStages", {}))
            else:
                assert refresh_now is not None  # checked above
                refresh_now(secret_id)
                description = _Description(started_at, None)
        except BaseException as exc:
            self._end_describe(secret_id, future, None)
            _settle(future, exc)  # close() may have settled it already
            raise
        self._end_describe(secret_id, future, description)
        _settle(future, description)
        return description

    def _end_describe(
        self, secret_id: str, future: Future[_Description], description: _Description | None
    ) -> None:
        """Keep the newest answer, and end the flight (both at once: no caller sees neither)."""
        with self._lock:
            if description is not None:
                latest = self._descriptions.get(secret_id)
                if latest is None or latest.started_at <= description.started_at:
                    self._descriptions[secret_id] = description
                if len(self._descriptions) > self.max_secrets:
                    oldest = min(self._descriptions, key=lambda k: self._descriptions[k].started_at)
                    del self._descriptions[oldest]
            if self._describe_inflight.get(secret_id, (0.0, None))[1] is future:
                del self._describe_inflight[secret_id]

    def describe(self, secret_id: str, fetched_since: float) -> Mapping[str, Sequence[str]] | None:
        """Which version each stage points at, as Secrets Manager said after ``fetched_since``
        (one DescribeSecret shared by every caller since then); None if the source cannot say."""
        description = self._describe(secret_id, fetched_since)
        return None if description is None else description.version_stages

    def _known_value(
        self, secret_id: str, version_id: str, old: _Entry | None
    ) -> SecretValue | None:
        """A value this cache already holds for ``version_id``, under any stage."""
        if old is not None and old.value.version_id == version_id:
            return old.value
        with self._lock:
            held = [e for (name, _), e in self._entries.items() if name == secret_id]
        for entry in held:
            if entry.value.version_id == version_id:
                return entry.value
        return None

    def _fetch(
        self, key: tuple[str, str], old: _Entry | None, fetched_since: float | None
    ) -> _Entry:
        secret_id, stage = key
        try:
            description = None
            if old is not None or fetched_since is not None:
                description = self._describe(secret_id, fetched_since)
            if description is not None and description.version_stages is not None:
                version_id = description.version_at(stage)
                if version_id is None:
                    self._forget(key)
                    raise SecretCacheError(
                        f"secret '{secret_id}' has no version at {stage}", transient=False
                    )
                known = self._known_value(secret_id, version_id, old)
                if known is not None:
                    if old is not None:
                        self.stats.refreshes += 1
                    stages = tuple(description.version_stages.get(version_id, (stage,)))
                    if known.stages != stages:
                        known = replace(known, stages=stages)
                    return self._new_entry(known)
                self.stats.fetches += 1
                response = self.client.get_secret_value(SecretId=secret_id, VersionId=version_id)
            else:
                self.stats.fetches += 1
                response = self.client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except (ClientError, BotoCoreError) as exc:  # BotoCoreError: connections, timeouts
            error = _cache_error(exc, secret_id, f"at {stage}")
            if not error.transient:
                # A permanent error must not be hidden behind a stale value.
                self._forget(key)
            raise error from exc
        if old is not None:
            self.stats.refreshes += 1
        value = _value_from(secret_id, response, stage)
        if old is not None and old.value.version_id == value.version_id:
            value = old.value  # keep the parsed JSON of an unchanged version
        return self._new_entry(value)

    def _forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)

    # -- every stage at once --------------------------------------------------------------------

    def stage_values(
        self, secret_id: str, fetched_since: float, stages: Sequence[str] = ROTATION_STAGES
    ) -> dict[str, SecretValue] | None:
        """The value at each of ``stages`` as one DescribeSecret made at or after
        ``fetched_since`` saw them: a consistent view, unlike stages fetched one by one while a
        rotation moves them. One DescribeSecret shared by every caller since then; a version the
        cache holds costs nothing more. None when the source cannot describe.

        The stages' entries are updated, so the next ``get()`` sees the new AWSCURRENT.
        """
        with self._lock:
            if self._closed:
                raise SecretCacheError("the secret cache is closed")
        try:
            description = self._describe(secret_id, fetched_since)
        except (ClientError, BotoCoreError) as exc:
            raise _cache_error(exc, secret_id, "DescribeSecret") from exc
        if description is None or description.version_stages is None:
            return None
        out: dict[str, SecretValue] = {}
        for version_id, labels in description.version_stages.items():
            wanted = [label for label in labels if label in stages]
            if wanted:
                try:
                    value = self._value_of_version(secret_id, version_id, tuple(labels))
                except SecretCacheError as exc:
                    if exc.code != "ResourceNotFoundException":
                        raise  # throttled, denied, unreachable: not "nothing there"
                    # A version can carry a stage before it has a value (RotateSecret's
                    # AWSPENDING before createSecret): nothing to offer at that stage.
                    continue
                for label in wanted:
                    out[label] = value
                    self._store((secret_id, label), self._new_entry(value))
        return out

    def _value_of_version(
        self, secret_id: str, version_id: str, labels: tuple[str, ...]
    ) -> SecretValue:
        """A version's value: held already (under any stage), or fetched once however many
        callers want it at the same time."""
        known = self._known_value(secret_id, version_id, None)
        if known is not None:
            return known if known.stages == labels else replace(known, stages=labels)
        key = (secret_id, version_id)
        with self._lock:
            future = self._version_inflight.get(key)
            owner = future is None
            if future is None:
                future = self._version_inflight[key] = Future()
        if not owner:
            return future.result()
        outcome: SecretValue | SecretCacheError
        try:
            self.stats.fetches += 1
            response = self.client.get_secret_value(SecretId=secret_id, VersionId=version_id)
            value = _value_from(secret_id, response, labels[0] if labels else "")
            outcome = replace(value, stages=labels)
        except (ClientError, BotoCoreError) as exc:
            outcome = _cache_error(exc, secret_id, f"version {version_id}")
        except BaseException as exc:
            outcome = SecretCacheError(f"fetching secret '{secret_id}' failed")
            if not isinstance(exc, Exception):
                _settle(future, outcome)
                raise
        finally:
            with self._lock:
                if self._version_inflight.get(key) is future:
                    del self._version_inflight[key]
        _settle(future, outcome)  # close() may have settled it already: its answer stands
        return future.result()

    def _store(self, key: tuple[str, str], entry: _Entry) -> None:
        with self._lock:
            self._entries[key] = entry
            if len(self._entries) > self.max_secrets:
                oldest = min(self._entries, key=lambda k: self._entries[k].last_used)
                del self._entries[oldest]
                self.stats.evictions += 1
                if not any(k[0] == oldest[0] for k in self._entries):
                    self._descriptions.pop(oldest[0], None)


def _settle[T](future: Future[T], outcome: T | BaseException) -> None:
    """Complete ``future`` unless something (``close()``) already did."""
    try:
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
    except InvalidStateError:
        pass


def _cache_error(exc: BaseException, secret_id: str, what: str) -> SecretCacheError:
    """The one mapping of a Secrets Manager failure to ours: its code, and whether trying again
    later may help (throttling, a 5xx, no connection)."""
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        transient = (
            code in _TRANSIENT_CODES
            or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
        )
        kind = "transient" if transient else "permanent"
        return SecretCacheError(
            f"fetching secret '{secret_id}' ({what}) failed ({code}, {kind})",
            transient=transient,
            code=code,
        )
    return SecretCacheError(
        f"fetching secret '{secret_id}' ({what}) failed ({type(exc).__name__}, transient)",
        transient=True,
    )


def _value_from(secret_id: str, response: Mapping[str, object], stage: str) -> SecretValue:
    string, binary = response.get("SecretString"), response.get("SecretBinary")
    labels = response.get("VersionStages")
    return SecretValue(
        secret_id=secret_id,
        version_id=str(response.get("VersionId", "")),
        stages=tuple(str(s) for s in labels) if isinstance(labels, list) else (stage,),
        string=string if isinstance(string, str) else None,
        binary=bytes(binary) if isinstance(binary, bytes | bytearray) else None,
    )


def _drop_connections(client: object) -> None:
    """Close a botocore client's pooled HTTP connections (inherited across a fork, they would be
    shared with the parent); it reconnects on its next call."""
    endpoint = getattr(client, "_endpoint", None)
    session = getattr(endpoint, "http_session", None)
    close = getattr(session, "close", None)
    if callable(close):
        close()
