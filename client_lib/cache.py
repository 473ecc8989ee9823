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
- At most ``max_secrets`` entries; the least recently used goes first.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from .errors import ClientLibError

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


class SecretCacheError(ClientLibError):
    """The secret could not be fetched and no usable cached value exists."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


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
    """What one DescribeSecret said: the version each stage points at."""

    started_at: float
    """The cache clock before the call: the state described is at least this recent."""
    version_stages: Mapping[str, Sequence[str]]

    def version_at(self, stage: str) -> str | None:
        for version_id, stages in self.version_stages.items():
            if stage in stages:
                return version_id
        return None


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


class SecretCache:
    """Cache of secret values by ``(secret_id, stage)``.

    Usage::

        cache = SecretCache(boto3.client("secretsmanager"), ttl=300)
        cache.get("prod/db").json()["username"]
    """

    def __init__(
        self,
        client: Any = None,
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
        if client is None:
            import boto3

            client = boto3.client("secretsmanager")
        self.client = client
        self.ttl, self.jitter, self.refresh_ahead = ttl, jitter, refresh_ahead
        self.max_staleness, self.max_secrets = max_staleness, max_secrets
        self.clock = clock
        if random is None:
            import random as _random

            random = _random.random
        self._random = random
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._inflight: dict[tuple[str, str], Future[_Entry]] = {}
        self._descriptions: dict[str, _Description] = {}
        self._lock = threading.Lock()
        self._executor = executor
        self.stats = CacheStats()

    # -- the hot path ---------------------------------------------------------------------------

    def get(self, secret_id: str, stage: str = "AWSCURRENT") -> SecretValue:
        """The cached value; fetched on a miss, refreshed in the background when due."""
        entry = self._entries.get((secret_id, stage))
        if entry is not None:
            now = self.clock()
            if now < entry.refresh_at:
                entry.last_used = now
                self.stats.hits += 1
                return entry.value
        return self._slow_get(secret_id, stage, entry)

    def get_if_fresh(self, secret_id: str, stage: str = "AWSCURRENT") -> SecretValue | None:
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

    def get_string(self, secret_id: str, stage: str = "AWSCURRENT") -> str:
        value = self.get(secret_id, stage)
        if value.string is None:
            raise SecretCacheError(f"secret '{secret_id}' holds binary data, not a string")
        return value.string

    def get_json(self, secret_id: str, stage: str = "AWSCURRENT") -> Any:
        return self.get(secret_id, stage).json()

    # -- refreshing -----------------------------------------------------------------------------

    def refresh(
        self, secret_id: str, stage: str = "AWSCURRENT", *, fetched_since: float | None = None
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

    def peek_version(self, secret_id: str, stage: str = "AWSCURRENT") -> str | None:
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
            if key in self._inflight or self._fresh(key) is not None:
                return  # running, or done since the caller read the old entry
            future: Future[_Entry] = Future()
            self._inflight[key] = future
            if self._executor is None:
                self._executor = ThreadPoolExecutor(2, thread_name_prefix="keyturn-cache")
        self._executor.submit(self._run_fetch, key, future, None)

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

    def _run_fetch(
        self, key: tuple[str, str], future: Future[_Entry], fetched_since: float | None
    ) -> None:
        try:
            entry = self._fetch(key, self._entries.get(key), fetched_since)
        except SecretCacheError as exc:
            self.stats.errors += 1
            with self._lock:
                self._inflight.pop(key, None)
            future.set_exception(exc)
            return
        with self._lock:
            self._entries[key] = entry
            self._inflight.pop(key, None)
            if len(self._entries) > self.max_secrets:
                oldest = min(self._entries, key=lambda k: self._entries[k].last_used)
                del self._entries[oldest]
                self.stats.evictions += 1
                if not any(k[0] == oldest[0] for k in self._entries):
                    self._descriptions.pop(oldest[0], None)
        future.set_result(entry)

    def _new_entry(self, value: SecretValue) -> _Entry:
        ttl = self.ttl * (1 + self.jitter * self._random())
        return _Entry(value, self.clock(), ttl, self.refresh_ahead * self.ttl)

    def _describe(self, secret_id: str, fetched_since: float | None) -> _Description | None:
        """A DescribeSecret made after ``fetched_since``, reused if there is one; else a new one."""
        if fetched_since is not None:
            recent = self._descriptions.get(secret_id)
            if recent is not None and recent.started_at >= fetched_since:
                return recent
        describe = getattr(self.client, "describe_secret", None)
        if describe is None:
            return None
        started_at = self.clock()
        self.stats.describes += 1
        response = describe(SecretId=secret_id)
        description = _Description(started_at, response.get("VersionIdsToStages", {}))
        self._descriptions[secret_id] = description
        return description

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
            if description is not None:
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
                    stages = tuple(description.version_stages[version_id])
                    if known.stages != stages:
                        known = replace(known, stages=stages)
                    return self._new_entry(known)
                self.stats.fetches += 1
                response = self.client.get_secret_value(SecretId=secret_id, VersionId=version_id)
            else:
                self.stats.fetches += 1
                response = self.client.get_secret_value(SecretId=secret_id, VersionStage=stage)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            transient = (
                code in _TRANSIENT_CODES
                or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) >= 500
            )
            kind = "transient" if transient else "permanent"
            if not transient:
                # A permanent error must not be hidden behind a stale value.
                self._forget(key)
            raise SecretCacheError(
                f"fetching secret '{secret_id}' at {stage} failed ({code}, {kind})",
                transient=transient,
            ) from exc
        except BotoCoreError as exc:  # connection errors and timeouts
            name = type(exc).__name__
            raise SecretCacheError(
                f"fetching secret '{secret_id}' at {stage} failed ({name}, transient)",
                transient=True,
            ) from exc
        if old is not None:
            self.stats.refreshes += 1
        value = SecretValue(
            secret_id=secret_id,
            version_id=str(response.get("VersionId", "")),
            stages=tuple(response.get("VersionStages", (stage,))),
            string=response.get("SecretString"),
            binary=response.get("SecretBinary"),
        )
        if old is not None and old.value.version_id == value.version_id:
            value = old.value  # keep the parsed JSON of an unchanged version
        return self._new_entry(value)

    def _forget(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._entries.pop(key, None)
