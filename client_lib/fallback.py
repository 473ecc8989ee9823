"""What to try when a login fails across a rotation: one algorithm for sync and asyncio.

:func:`plan` is a generator of steps that a connector runs - :class:`Fetch` (what Secrets Manager
says at every stage, in one look made after a given moment) and :class:`Attempt` (log in with those
credentials, within a time limit) - and it returns the connection. The sync connector runs the
steps in the caller's thread, the asyncio one awaits them; neither decides anything.

The rules, safe by construction:

1. **AWSCURRENT first**, from the cache (no Secrets Manager call when it is fresh). When its
   version was refused moments ago and another version logged in since (the single-user window
   between setSecret and finishSecret), that one is used instead, with no failed login.
2. **On a refusal**, what Secrets Manager says *now* is tried, newest first: AWSPENDING (the
   single-user window; a setSecret follows createSecret within moments), AWSCURRENT (a rotation
   finished), and only then AWSPREVIOUS; credentials another caller has just logged in with go
   before all of them. Every caller refused by one change of the database shares one
   DescribeSecret, made after the first of them was refused (a password never comes back, and
   Secrets Manager holds the new one before the database takes it); a caller to whom that look
   shows nothing new looks again, after its own refusal, before giving up.
3. **Refused credentials are remembered** per version, across calls, threads and every
   connector of the same cache, secret and server (:meth:`SecretCache.shared`), until
   credentials that worked are refused (the database changed: what it refused before may work
   now) or ``retry_refused_after`` passes: a wrong password is not tried again on every call.
   A login that began before its credentials were refused does not vouch for them when it
   completes after. A refusal in no known language is acted on in the call but not remembered.
   While the database is changing (moments after such a refusal), AWSCURRENT is read from
   Secrets Manager as it was after the change, not from the cache; while a fallback is in use,
   AWSCURRENT is looked at again every ``recheck_current_after`` seconds (one shared
   DescribeSecret, no login unless it changed).
4. **At most ``max_failed_logins`` refused logins per connect()** (2, below MySQL's smallest
   useful ``FAILED_LOGIN_ATTEMPTS`` of 3) with credentials that had not just worked; past it,
   only credentials another caller has just logged in with. Credentials that had just worked
   and are refused now mean the database changed under the caller (a rotation moved on): that
   refusal is not counted, but nothing older (AWSPREVIOUS) is tried after it. Credentials that
   did not log in here since the latest change are tried by one caller at a time, so a burst of
   threads with a wrong password costs one refused login, not one per thread.
5. **One time budget** for the whole connect(): every attempt's connect timeout is capped by
   what remains of it.

Network, TLS and other errors are not rotation: the connector raises them at once.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass
from typing import Any

from keyturn_core.protocol import AWSCURRENT, AWSPENDING, AWSPREVIOUS

from .cache import SecretValue
from .credentials import Credentials

_PASSES = 3  # looks at Secrets Manager per connect(), when rotations overtake the caller
# Seconds a caller past its refusal limit waits for another caller to log in with credentials
# it may not try itself (a rotation overtook it; others are probing the new password).
_PROOF_WAIT = 1.0


@dataclass(frozen=True, slots=True)
class FallbackPolicy:
    """How hard a connector tries after a refused login: its limits hold per ``connect()``;
    what is remembered between calls is shared by every connector of the cache and secret."""

    budget: float = 10.0
    """Seconds for a whole ``connect()``, every attempt's connect timeout included."""
    max_failed_logins: int = 2
    """Refused logins per ``connect()`` with credentials that had not just worked here; keep it
    below the database's lockout threshold."""
    retry_refused_after: float = 60.0
    """Seconds before credentials refused at a stage are tried again (sooner if that stage
    points at another version)."""
    recheck_current_after: float = 5.0
    """While a fallback is in use, seconds between looks at AWSCURRENT for a new version."""
    try_pending: bool = True
    try_previous: bool = True

    def __post_init__(self) -> None:
        if self.budget <= 0 or self.max_failed_logins < 1:
            raise ValueError("budget > 0 and max_failed_logins >= 1")


@dataclass(frozen=True, slots=True)
class Fetch:
    """Step: every stage's value, from one look at Secrets Manager made after ``since``.

    The connector answers with a mapping of stage to value (absent stages missing): one
    consistent view, since a rotation moves the stages while a caller looks at them one by one.
    """

    since: float


@dataclass(frozen=True, slots=True)
class Attempt:
    """Step: log in with ``credentials`` within ``timeout`` seconds.

    ``exclusive``: these credentials never logged in here; the connector waits for
    :meth:`FallbackState.probe_lock` and then asks ``verdict()``: "refused" (another caller was
    refused meanwhile: skip), "good" (another caller logged in: release the lock, attempt freely)
    or "unknown" (attempt while holding the lock). The connector answers with a :class:`Result`.
    """

    credentials: Credentials
    stage: str
    version: str
    timeout: float
    exclusive: bool
    verdict: Callable[[], str]
    proven_only: bool = False
    """Past the call's refusal limit: attempt only once the verdict is "good" (another caller
    has logged in with these credentials since the call began); the connector polls
    ``verdict()`` for up to ``proof_wait`` seconds without taking the probe lock, and skips if
    no proof comes."""
    proof_wait: float = 0.0


@dataclass(frozen=True, slots=True)
class Result:
    """What an :class:`Attempt` gave: a connection, a refusal, or nothing (skipped).

    ``confirmed``: the refusal names the credentials (a known message or error number). An
    unconfirmed one (the password was sent, the message is in no known language) is acted on
    in this call but not remembered, and alone it is raised as the driver's error.
    """

    connection: Any = None
    refused: BaseException | None = None
    confirmed: bool = True


@dataclass
class _Version:
    good: bool = False  # logged in here, and not refused since
    retried: bool = False  # an outdated refusal was retried once: never again until it logs in
    refused_at: float | None = None
    logged_in_at: float | None = None  # when the last attempt that logged in began


class OutOfAttempts(Exception):
    """No stored version logged in: the connector raises its driver's AuthenticationFailed (or,
    when no refusal was confirmed, the driver's own last error)."""

    def __init__(
        self, message: str, last: BaseException | None, confirmed: bool, busy: bool = False
    ) -> None:
        super().__init__(message)
        self.last = last
        self.confirmed = confirmed
        self.busy = busy  # nothing refused: the budget ran out waiting for other callers


class FallbackState:
    """What every connector of one cache knows about one secret at one server: which versions
    logged in, which were refused, and the fallback in use. Thread-safe; no I/O. The time
    windows come from each caller's policy."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._versions: dict[str, _Version] = {}
        self._probes: dict[str, threading.Lock] = {}
        self._fallback: tuple[str, SecretValue] | None = None  # (stage, value) that logged in
        self._current_checked_at = float("-inf")
        # When credentials that worked were last refused: the database changed then, so a
        # refusal from before says nothing about now.
        self._changed_at = float("-inf")
        # When the latest change of the database was first seen: a version that had logged in
        # after the change before it was refused. Logins that raced the change (begun before
        # it, succeeding after a refusal) do not move it, so every caller refused by one change
        # shares one look at Secrets Manager made after this moment.
        self._change_seen_at = float("-inf")

    def probe_lock(self, version: str) -> threading.Lock:
        """Held while untried credentials are tried, so one caller at a time tries them."""
        with self._lock:
            return self._probes.setdefault(version, threading.Lock())

    def is_good(self, version: str, policy: FallbackPolicy, since: float | None = None) -> bool:
        """Logged in here recently, since the database last changed, and not refused since
        (with ``since``: by a login begun at or after that moment). A version that worked long
        ago, or before the latest change, may have been replaced (a rotation while the
        application was idle, or the one just seen), so it is probed one caller at a time like
        untried credentials."""
        with self._lock:
            state = self._versions.get(version)
            if state is None or not state.good or state.logged_in_at is None:
                return False
            if state.logged_in_at < max(self._change_seen_at, since or float("-inf")):
                return False
            return self.clock() - state.logged_in_at < policy.retry_refused_after

    def is_refused(self, version: str, policy: FallbackPolicy) -> bool:
        """Refused since the database last changed, and not long ago."""
        with self._lock:
            state = self._versions.get(version)
            at = None if state is None else state.refused_at
            changed_at = self._changed_at
        return (
            at is not None and at >= changed_at and self.clock() - at < policy.retry_refused_after
        )

    def refused_at(self, version: str) -> float | None:
        with self._lock:
            state = self._versions.get(version)
            return None if state is None else state.refused_at

    def retry_once(self, version: str) -> bool:
        """Whether an outdated refusal of ``version`` may be retried (once, until it logs in:
        with every stage's password wrong, retries must not chase each other's refusals)."""
        with self._lock:
            state = self._versions.setdefault(version, _Version())
            if state.retried:
                return False
            state.retried = True
            return True

    def retried(self, version: str) -> bool:
        with self._lock:
            state = self._versions.get(version)
            return state is not None and state.retried

    def verdict(self, version: str, policy: FallbackPolicy) -> str:
        """ "good", "refused" or "unknown": what other callers found out about ``version``."""
        if self.is_good(version, policy):
            return "good"
        return "refused" if self.is_refused(version, policy) else "unknown"

    def refused_since(self) -> float:
        """When the latest refusal happened (-inf if none): Secrets Manager as seen since then
        is recent enough to know nothing new appeared."""
        with self._lock:
            times = [v.refused_at for v in self._versions.values() if v.refused_at is not None]
        return max(times, default=float("-inf"))

    def changing_since(self, policy: FallbackPolicy) -> float | None:
        """When the database's latest change was first seen, if that was moments ago (a
        rotation in progress)."""
        with self._lock:
            seen_at = self._change_seen_at
        recent = self.clock() - seen_at < policy.recheck_current_after
        return seen_at if recent else None

    def record(self, stage: str, value: SecretValue, result: Result, started: float) -> None:
        """What an attempt begun at ``started`` gave."""
        with self._lock:
            state = self._versions.setdefault(value.version_id, _Version())
            if result.connection is not None:
                if state.refused_at is not None and started < state.refused_at:
                    # A login that began before these credentials were refused and finished
                    # after: it raced the change, it does not vouch for them now.
                    return
                state.good = True
                state.retried = False
                state.refused_at = None
                state.logged_in_at = started
                self._fallback = None if stage == AWSCURRENT else (stage, value)
                if stage != AWSCURRENT:
                    # This caller just read AWSCURRENT from Secrets Manager: the next look
                    # is due one interval from now.
                    self._current_checked_at = self.clock()
            elif result.refused is not None and result.confirmed:
                now = self.clock()
                if state.good:
                    # Credentials that worked were refused: the database changed (a rotation, a
                    # replica catching up), so what it refused before may work now.
                    self._changed_at = now
                if state.logged_in_at is not None and state.logged_in_at > self._change_seen_at:
                    self._change_seen_at = now
                state.good = False
                state.refused_at = now
                if self._fallback is not None and self._fallback[1].version_id == value.version_id:
                    self._fallback = None
            # Forget the oldest memories past a bound: a connector lives as long as the app.
            if len(self._versions) > 64:
                del self._versions[next(iter(self._versions))]

    def shared_since(self, refused_at: float, policy: FallbackPolicy) -> float:
        """The moment a look at Secrets Manager must follow for a caller refused at
        ``refused_at``: when the latest change was first seen, if that was moments before, else
        ``refused_at`` itself. (A look that shows nothing new is followed by one after
        ``refused_at``: the change seen may not be the one that refused this caller.)"""
        with self._lock:
            seen_at = self._change_seen_at
        if seen_at <= refused_at < seen_at + policy.recheck_current_after:
            return seen_at
        return refused_at

    def fallback(self) -> tuple[str, SecretValue] | None:
        with self._lock:
            return self._fallback

    def due_to_recheck_current(self, policy: FallbackPolicy) -> bool:
        """Whether it is time to look at AWSCURRENT again while a fallback is in use."""
        now = self.clock()
        with self._lock:
            if now - self._current_checked_at < policy.recheck_current_after:
                return False
            self._current_checked_at = now
            return True


def plan(
    state: FallbackState,
    policy: FallbackPolicy,
    current: SecretValue,
    parse: Callable[[SecretValue], Credentials],
    started: float,
    secret_id: str,
) -> Generator[Fetch | Attempt, Any, Any]:
    """The steps of one ``connect()``; returns the connection, or raises :class:`OutOfAttempts`.

    ``current`` is AWSCURRENT's cached value, ``started`` the cache clock when it was read.
    """
    clock = state.clock
    call_began = clock()
    deadline = call_began + policy.budget
    refused = 0  # every refusal in this call
    counted = 0  # refusals of credentials that had not just worked: capped
    confirmed = 0  # refusals that named the credentials
    changed = False  # credentials that had just worked were refused: the database moved on
    first_refusal, last_refusal = float("inf"), float("-inf")
    tried: set[str] = set()
    waited = 0  # attempts left to another caller still trying the same credentials
    last: BaseException | None = None

    def attempt(
        stage: str, value: SecretValue, proven_only: bool = False, retry: bool = False
    ) -> Generator[Fetch | Attempt, Any, Any]:
        nonlocal refused, counted, confirmed, changed, first_refusal, last_refusal, last, waited
        began = clock()
        remaining = deadline - began
        if remaining <= 0:
            return None

        proven = state.is_good(value.version_id, policy)
        if retry and not proven_only and not state.retry_once(value.version_id):
            return None
        known_refusal = state.refused_at(value.version_id)

        def verdict() -> str:
            if proven_only:  # logged in by another caller during this call, or nothing
                if state.is_good(value.version_id, policy, call_began):
                    return "good"
                again = state.refused_at(value.version_id) != known_refusal
                return "refused" if again else "unknown"
            if retry and not state.is_good(value.version_id, policy):
                # An outdated refusal is retried, unless another caller was refused again since.
                now_refused = state.refused_at(value.version_id)
                fresh = now_refused is not None and now_refused != known_refusal
                return "refused" if fresh else "unknown"
            return state.verdict(value.version_id, policy)

        result: Result = yield Attempt(
            parse(value),
            stage,
            value.version_id,
            remaining,
            exclusive=not proven_only and not proven,
            verdict=verdict,
            proven_only=proven_only,
            # Waiting is worth it only while a rotation is moving the database under callers.
            proof_wait=min(remaining, _PROOF_WAIT) if proven_only and changed else 0.0,
        )
        state.record(stage, value, result, began)
        if result.connection is not None or result.refused is not None:
            tried.add(value.version_id)  # a skipped attempt may be offered again
        if result.refused is not None:
            refused += 1
            # Credentials that had just worked, refused now: the database changed under the
            # caller (a rotation moved on). Not counted; but nothing older is tried after them.
            changed = changed or (proven and result.confirmed)
            counted += 0 if proven and result.confirmed else 1
            confirmed += 1 if result.confirmed else 0
            last_refusal = clock()
            first_refusal = min(first_refusal, last_refusal)
            last = result.refused
        elif not proven_only and result.connection is None:
            waited += 0 if state.is_refused(value.version_id, policy) else 1
        return result.connection

    def usable(value: SecretValue, outdated: bool = False) -> bool:
        if outdated:  # the database moved on after this caller (or another) tried them
            return True
        return value.version_id not in tried and not state.is_refused(value.version_id, policy)

    def outdated_refusal(stage: str, seen: Mapping[str, SecretValue], at_limit: bool) -> bool:
        """Whether AWSPENDING's refusal predates a refusal of AWSCURRENT's version: the
        single-user setSecret ran in between (AWSPENDING was probed just before it), so the
        database may hold AWSPENDING now. Retried once per version (see retry_once); a caller
        past its limit only waits for the retry's outcome, so that once does not bind it."""
        if stage != AWSPENDING or AWSCURRENT not in seen:
            return False
        mine = state.refused_at(seen[stage].version_id)
        if mine is None or (state.retried(seen[stage].version_id) and not at_limit):
            return False
        current = state.refused_at(seen[AWSCURRENT].version_id)
        return current is not None and current > mine

    # 1. AWSCURRENT (as Secrets Manager had it after the database changed, when that was
    # moments ago: the cached value may be a version behind), or the fallback that logged in
    # while AWSCURRENT's version is refused.
    changed_at = state.changing_since(policy)
    if changed_at is not None:
        seen: Mapping[str, SecretValue] = yield Fetch(changed_at)
        current = seen.get(AWSCURRENT, current)
    first: tuple[str, SecretValue] | None = (AWSCURRENT, current)
    if state.is_refused(current.version_id, policy):
        first = state.fallback()
        if first is not None and state.due_to_recheck_current(policy):
            seen = yield Fetch(clock())
            fresh = seen.get(AWSCURRENT)
            if fresh is not None and usable(fresh):
                first = (AWSCURRENT, fresh)
    if first is not None and usable(first[1]):
        conn = yield from attempt(*first)
        if conn is not None:
            return conn
    # 2. What Secrets Manager says now: a describe made after this call's refusal (the database
    # changed before it, and Secrets Manager had the new version before the database: callers
    # refused together share it); if no login was refused in this call, one made after the last
    # refusal and at most recheck_current_after old (a burst of calls that fail fast shares one).
    # Rotations can follow each other faster than a caller steps through the versions: when a
    # pass was refused, the next one reads Secrets Manager again, as it was after that refusal
    # (a few passes at most; each costs one DescribeSecret shared by every caller).
    if refused:
        needed = first_refusal
    else:
        needed = min(started, max(state.refused_since(), clock() - policy.recheck_current_after))
    # Callers refused by one change share the look the first of them made; if that look shows
    # nothing new to this caller, it looks again, as late as it needs.
    since = state.shared_since(needed, policy)
    again: float | None = needed if since < needed else None
    # Newest first: AWSPENDING is what a rotation under way has set or is about to set (a
    # single-user setSecret follows createSecret within moments), AWSCURRENT what the last one
    # finished with; AWSPREVIOUS only after both.
    stages = [AWSPENDING] if policy.try_pending else []
    stages += [AWSCURRENT]
    stages += [AWSPREVIOUS] if policy.try_previous else []
    for _ in range(_PASSES):
        refused_before = refused
        seen = yield Fetch(since)
        # Credentials another caller logged in with since the change come first.
        candidates = [(stage, seen[stage]) for stage in stages if stage in seen]
        candidates.sort(key=lambda pair: not state.is_good(pair[1].version_id, policy))
        for stage, value in candidates:
            if clock() >= deadline:
                break
            # Past the limit, only credentials another caller has just logged in with.
            at_limit = counted >= policy.max_failed_logins
            outdated = outdated_refusal(stage, seen, at_limit)
            if not usable(value, outdated) or (changed and stage == AWSPREVIOUS):
                continue  # AWSPREVIOUS is older than credentials the database just dropped
            conn = yield from attempt(stage, value, proven_only=at_limit, retry=outdated)
            if conn is not None:
                return conn
        if refused == refused_before:
            if again is not None:
                since, again = again, None
                continue
            break  # nothing was tried in this pass: Secrets Manager has nothing new
        # Past the limit, one further look still offers what other callers prove meanwhile.
        since, again = last_refusal, None
    if refused:
        why = f"{refused} refused login(s) in this call"
    elif waited:
        why = "another caller was still trying the credentials when the time budget ran out"
    else:
        why = "every stored version was refused recently"
    raise OutOfAttempts(
        f"no version of secret '{secret_id}' logged in ({why}; a refused version is tried again "
        f"after {policy.retry_refused_after:g} s or when its stage points at another version)",
        last,
        confirmed=confirmed > 0 or not refused,
        busy=not refused and waited > 0,
    )


__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "Attempt",
    "FallbackPolicy",
    "FallbackState",
    "Fetch",
    "OutOfAttempts",
    "Result",
    "plan",
]
