"""Rotation-aware connect with a fake database and fake time: every rule of the fallback."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import psycopg
import pymysql
import pytest

from client_lib import (
    AccountLocked,
    AsyncRotationAwareConnector,
    AuthenticationFailed,
    Credentials,
    FallbackPolicy,
    RotationAwareConnector,
    SecretCache,
    SecretCacheError,
    SecretValueError,
    is_psycopg_auth_failure,
    is_pymysql_auth_failure,
)
from keyturn_core import LoginFailure

from .test_cache import CountingClient, FakeClock


def secret(password: str, user: str = "app") -> str:
    return json.dumps({"engine": "mysql", "host": "db", "username": user, "password": password})


class Refused(Exception):
    pass


class Locked(Exception):
    pass


def classify(exc: BaseException) -> LoginFailure | None:
    if isinstance(exc, Refused):
        return LoginFailure.AUTHENTICATION
    if isinstance(exc, Locked):
        return LoginFailure.LOCKED
    return None


class FakeDb:
    """A database with one password; records every login attempt."""

    def __init__(self, password: str, clock: FakeClock, seconds_per_login: float = 0.0) -> None:
        self.password = password
        self.clock = clock
        self.seconds_per_login = seconds_per_login
        self.down = False
        self.locked = False
        self.attempts: list[str] = []
        self.timeouts: list[float] = []
        self.lock = threading.Lock()

    def connect(self, creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        with self.lock:
            self.attempts.append(creds.password)
            self.timeouts.append(timeout)
            self.clock.now += self.seconds_per_login
        if self.down:
            raise ConnectionRefusedError("db is down")
        if self.locked:
            raise Locked("account locked")
        if creds.password != self.password:
            raise Refused("access denied")
        return f"conn:{creds.password}"


class World:
    def __init__(self, db_password: str, policy: FallbackPolicy | None = None, **stages: str):
        self.client = CountingClient()
        self.set(**stages)
        self.clock = FakeClock()
        self.cache = SecretCache(self.client, clock=self.clock, ttl=300, jitter=0.0)
        self.db = FakeDb(db_password, self.clock)
        self.connector = RotationAwareConnector(
            self.cache, "app/db", self.db.connect, classify, policy=policy
        )

    def set(self, **stages: str) -> None:
        self.client.versions["app/db"] = {
            stage: (f"v-{password}", secret(password)) for stage, password in stages.items()
        }


def test_current_credentials_need_no_fallback() -> None:
    w = World("new", AWSCURRENT="new")
    assert w.connector.connect() == "conn:new"
    assert w.connector.stats.refused_logins == 0
    assert (w.client.describes, w.client.gets) == (0, 1)


def test_single_user_window_falls_back_to_pending_then_sticks_without_failing() -> None:
    # setSecret ran: the database has the pending password; AWSCURRENT still holds the old one.
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    assert w.connector.connect() == "conn:new"
    assert w.db.attempts == ["old", "new"]  # the refreshed AWSCURRENT was the refused one
    assert (w.connector.stats.recovered, w.connector.stats.fallbacks) == (1, {"AWSPENDING": 1})
    for _ in range(5):
        assert w.connector.connect() == "conn:new"
    assert w.db.attempts == ["old", "new", "new", "new", "new", "new", "new"]  # no more refusals
    assert (w.connector.stats.recovered, w.connector.stats.fallbacks) == (1, {"AWSPENDING": 6})


def test_awscurrent_is_looked_at_again_and_wins_once_it_changes() -> None:
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    w.connector.connect()  # falls back to AWSPENDING
    w.set(AWSCURRENT="new", AWSPREVIOUS="old")  # finishSecret
    w.clock.now += 6  # past recheck_current_after
    describes = w.client.describes
    assert w.connector.connect() == "conn:new"
    assert w.client.describes == describes + 1  # one look at AWSCURRENT
    assert w.connector.stats.rotations_detected == 1  # that look saw the rotation: hooks ran
    w.db.attempts.clear()
    assert w.connector.connect() == "conn:new"
    assert w.db.attempts == ["new"]
    assert w.connector.stats.rotations_detected == 1


def test_a_stuck_fallback_returns_to_awscurrent() -> None:
    """A replica behind: AWSCURRENT refused, AWSPREVIOUS logs in. Once the replica catches up,
    the fallback is refused and AWSCURRENT is tried again at once, not after 60 s."""
    w = World("older", AWSCURRENT="new", AWSPREVIOUS="older")
    w.db.seconds_per_login = 0.01  # time moves between events, as it does
    assert w.connector.connect() == "conn:older"
    assert w.connector.connect() == "conn:older"  # AWSCURRENT's refusal is remembered
    assert w.db.attempts == ["new", "older", "older"]
    w.db.password = "new"  # the replica caught up
    w.db.attempts.clear()
    assert w.connector.connect() == "conn:new"
    assert w.db.attempts == ["older", "new"]
    w.db.attempts.clear()
    assert w.connector.connect() == "conn:new"
    assert w.db.attempts == ["new"]


def test_previous_only_after_current_and_pending_failed_and_never_more_than_two_refusals() -> None:
    w = World("older", AWSCURRENT="old", AWSPENDING="new", AWSPREVIOUS="older")
    with pytest.raises(AuthenticationFailed, match="2 refused login"):
        w.connector.connect()
    assert w.db.attempts == ["old", "new"]  # AWSPREVIOUS not yet: two refusals per call
    assert w.connector.connect() == "conn:older"  # the next call skips what was refused
    assert w.db.attempts == ["old", "new", "older"]
    assert (w.connector.stats.recovered, w.connector.stats.fallbacks) == (0, {"AWSPREVIOUS": 1})


def test_a_wrong_password_costs_one_refused_login_not_one_per_call() -> None:
    w = World("right", AWSCURRENT="wrong")
    with pytest.raises(AuthenticationFailed) as first:
        w.connector.connect()
    assert isinstance(first.value.__cause__, Refused)
    started = time.monotonic()
    for _ in range(50):
        with pytest.raises(AuthenticationFailed, match="refused recently") as info:
            w.connector.connect()
    assert time.monotonic() - started < 2  # fast: no budget burned in sleeps
    assert w.db.attempts == ["wrong"]
    assert w.client.describes <= 2
    assert "wrong" not in str(info.value)
    w.clock.now += 61  # after retry_refused_after, one more try
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    assert w.db.attempts == ["wrong", "wrong"]


def test_a_fixed_secret_is_tried_at_once() -> None:
    w = World("right", AWSCURRENT="wrong")
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    w.set(AWSCURRENT="right")  # the operator puts the right password: a new version
    w.clock.now += 6  # one shared look at Secrets Manager per recheck_current_after
    assert w.connector.connect() == "conn:right"
    assert w.db.attempts == ["wrong", "right"]


def test_a_burst_of_threads_with_a_wrong_password_costs_one_refused_login() -> None:
    w = World("right", AWSCURRENT="wrong")
    w.db.seconds_per_login = 0.0
    real_connect = w.db.connect

    def slow(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        time.sleep(0.05)  # real time: the other threads arrive while this login runs
        return real_connect(creds, timeout, overrides)

    w.connector._connect = slow
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            w.connector.connect()
        except AuthenticationFailed as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(errors) == 8
    assert w.db.attempts == ["wrong"]


def test_a_locked_account_is_not_retried_with_other_versions() -> None:
    w = World("new", AWSCURRENT="new", AWSPREVIOUS="old")
    w.db.locked = True
    with pytest.raises(AccountLocked):
        w.connector.connect()
    assert w.db.attempts == ["new"]
    w.db.locked = False  # an administrator unlocked it: the same version works at once
    assert w.connector.connect() == "conn:new"


def test_other_errors_pass_through_unchanged() -> None:
    w = World("old", AWSCURRENT="old")
    w.db.down = True
    with pytest.raises(ConnectionRefusedError, match="db is down"):
        w.connector.connect()
    assert w.connector.stats.refused_logins == 0


def test_fallbacks_can_be_turned_off() -> None:
    w = World(
        "new",
        FallbackPolicy(try_pending=False, try_previous=False),
        AWSCURRENT="old",
        AWSPENDING="new",
    )
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    assert "new" not in w.db.attempts


def test_every_attempt_fits_the_remaining_budget() -> None:
    w = World("nothing", FallbackPolicy(budget=5.0), AWSCURRENT="old", AWSPREVIOUS="older")
    w.db.seconds_per_login = 3.0
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    # Capped by what remains (less the microseconds the attempt itself took to start).
    assert w.db.timeouts == [pytest.approx(5.0, abs=0.01), pytest.approx(2.0, abs=0.01)]
    w.db.seconds_per_login = 6.0
    w.clock.now += 100  # the refusals expired
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    assert len(w.db.timeouts) == 3  # the first attempt spent the whole budget: no second


def test_a_failing_hook_is_logged_and_the_connect_succeeds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = World("one", AWSCURRENT="one")
    w.connector.connect()

    def broken() -> None:
        raise RuntimeError("hook bug")

    calls: list[str] = []
    w.connector.on_rotation += [broken, lambda: calls.append("second hook")]
    w.set(AWSCURRENT="two")
    w.db.password = "two"
    w.clock.now += 301
    with caplog.at_level(logging.ERROR, logger="keyturn.client"):
        assert w.connector.connect() == "conn:two"
    assert calls == ["second hook"]
    assert w.connector.stats.hook_errors == 1
    assert "on_rotation hook" in caplog.text


def test_fallbacks_are_logged_without_secrets(caplog: pytest.LogCaptureFixture) -> None:
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    with caplog.at_level(logging.INFO, logger="keyturn.client"):
        w.connector.connect()
    assert "AWSCURRENT credentials (version v-old) were refused" in caplog.text
    assert "logged in with the AWSPENDING credentials" in caplog.text
    assert "old" not in caplog.text.replace("v-old", "")


def test_many_failures_at_once_cost_one_describe_and_one_get() -> None:
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    w.connector.credentials()
    gets = w.client.gets
    threads = [threading.Thread(target=w.connector.connect) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert (w.client.describes, w.client.gets - gets) == (1, 1)


def test_driver_auth_failure_classification() -> None:
    assert is_pymysql_auth_failure(pymysql.err.OperationalError(1045, "Access denied for user"))
    assert not is_pymysql_auth_failure(pymysql.err.OperationalError(2003, "Can't connect"))
    assert is_psycopg_auth_failure(
        psycopg.OperationalError('FATAL:  password authentication failed for user "app"')
    )
    assert is_psycopg_auth_failure(psycopg.errors.lookup("28P01")("x"))
    assert not is_psycopg_auth_failure(psycopg.OperationalError("Connection refused"))
    assert not is_psycopg_auth_failure(ValueError("password authentication failed"))


class AsyncWorld(World):
    def __init__(self, db_password: str, **stages: str) -> None:
        super().__init__(db_password, None, **stages)

        async def connect(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
            await asyncio.sleep(0)
            return self.db.connect(creds, timeout, overrides)

        self.aconnector = AsyncRotationAwareConnector(self.cache, "app/db", connect, classify)


def test_async_follows_the_same_rules() -> None:
    w = AsyncWorld("new", AWSCURRENT="old", AWSPENDING="new")

    async def main() -> None:
        assert await w.aconnector.connect() == "conn:new"
        assert await w.aconnector.connect() == "conn:new"
        w.db.down = True
        with pytest.raises(ConnectionRefusedError):
            await w.aconnector.connect()
        w.db.down, w.db.locked = False, True
        with pytest.raises(AccountLocked):
            await w.aconnector.connect()

    asyncio.run(main())
    assert w.db.attempts[:3] == ["old", "new", "new"]
    assert w.aconnector.stats.fallbacks == {"AWSPENDING": 2}


def test_async_fetches_run_on_the_cache_pool_not_the_default_executor() -> None:
    w = AsyncWorld("new", AWSCURRENT="old", AWSPENDING="new")
    seen: list[str] = []
    real_get = w.client.get_secret_value

    def recording(**kwargs: Any) -> Any:
        seen.append(threading.current_thread().name)
        return real_get(**kwargs)

    w.client.get_secret_value = recording  # type: ignore[method-assign,assignment]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        # The loop's default executor is created on first use: it must not be.
        await w.aconnector.connect()
        assert getattr(loop, "_default_executor", None) is None

    asyncio.run(main())
    assert seen
    assert all(name.startswith("keyturn-cache") for name in seen)


def test_a_cancelled_async_connect_leaves_no_probe_lock_held() -> None:
    w = AsyncWorld("right", AWSCURRENT="new")

    async def main() -> None:
        lock = w.aconnector._state_for(w.aconnector.credentials()).probe_lock("v-new")
        lock.acquire()  # another caller is probing these credentials
        task = asyncio.create_task(w.aconnector.connect())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        lock.release()  # the other caller finishes; the cancelled wait must not keep the lock
        await asyncio.sleep(0.05)
        assert lock.acquire(timeout=1)
        lock.release()

    asyncio.run(main())


def test_threads_refused_at_different_moments_by_one_change_share_one_look() -> None:
    """Each refusal lands at another moment (logins take time): all of them share the look the
    first refused thread made, rather than each needing one made after its own refusal."""
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    w.connector.credentials()
    w.clock.now += 1
    w.db.password = "old"
    assert w.connector.connect() == "conn:old"  # "old" logged in: good before the change
    w.db.password = "new"  # setSecret
    w.db.seconds_per_login = 0.01  # every login moves the clock: refusals at distinct moments
    real_connect = w.db.connect

    def slow(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        time.sleep(0.05)  # real time: the threads' logins overlap
        return real_connect(creds, timeout, overrides)

    w.connector._connect = slow
    describes, gets = w.client.describes, w.client.gets
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(w.connector.connect())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results == ["conn:new"] * 8
    assert (w.client.describes - describes, w.client.gets - gets) == (1, 1)


def test_a_shared_look_that_predates_the_callers_change_is_followed_by_its_own() -> None:
    """Sharing is safe: when the look shared from an earlier change shows nothing new to a
    caller, it looks again after its own refusal before giving up."""
    from client_lib.cache import SecretValue
    from client_lib.fallback import Attempt, FallbackState, Fetch, Result, plan

    clock = FakeClock()
    state = FallbackState(clock)

    def value(name: str, stage: str) -> SecretValue:
        return SecretValue("app/db", f"v-{name}", (stage,), secret(name), None)

    x, y = value("x", "AWSCURRENT"), value("y", "AWSPENDING")
    state.record("AWSCURRENT", x, Result(connection="c"), started=clock.now)  # x logs in
    clock.now += 1
    state.record("AWSPENDING", y, Result(connection="c"), started=clock.now)
    clock.now += 1
    state.record("AWSPENDING", y, Result(refused=Refused()), started=clock.now)
    seen_at = clock.now  # y, which logged in after every change, was refused: a change
    clock.now += 1
    steps = plan(
        state,
        FallbackPolicy(),
        x,
        lambda v: Credentials.from_secret_string(v.string or ""),
        clock.now,
        "app/db",
    )
    assert next(steps) == Fetch(seen_at)  # moments after a change: AWSCURRENT as it was then
    step = steps.send({"AWSCURRENT": x})
    assert isinstance(step, Attempt)
    assert step.version == "v-x"
    step = steps.send(Result(refused=Refused()))  # another change: x refused too
    refused_at = clock.now
    assert step == Fetch(seen_at)  # the look the earlier change's callers share...
    step = steps.send({"AWSCURRENT": x})  # ...shows nothing new to this caller
    assert step == Fetch(refused_at)  # so it looks again, after its own refusal
    z = value("z", "AWSPENDING")
    step = steps.send({"AWSCURRENT": x, "AWSPENDING": z})
    assert isinstance(step, Attempt)
    assert step.version == "v-z"
    with pytest.raises(StopIteration) as done:
        steps.send(Result(connection="conn:z"))
    assert done.value.value == "conn:z"


def test_a_version_that_logged_in_long_ago_counts_toward_the_cap() -> None:
    """A rotation finished while the application was idle; then the password was changed
    outside Secrets Manager. The version that last logged in (now AWSPREVIOUS) is not trusted
    for an extra refusal: still two refused logins per connect() at most."""
    w = World("old", AWSCURRENT="old")
    assert w.connector.connect() == "conn:old"
    w.set(AWSCURRENT="new", AWSPENDING="stuck", AWSPREVIOUS="old")
    w.db.password = "changed-by-hand"
    w.clock.now += 3600
    with pytest.raises(AuthenticationFailed, match="2 refused"):
        w.connector.connect()
    assert w.db.attempts == ["old", "new", "stuck"]


def test_connectors_of_one_cache_share_what_they_were_refused() -> None:
    """A pool builds a connector of its own, an application another: together still one
    refused login for a wrong password, not one per connector."""
    w = World("right", AWSCURRENT="wrong")
    other = RotationAwareConnector(w.cache, "app/db", w.db.connect, classify)
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    with pytest.raises(AuthenticationFailed, match="refused recently"):
        other.connect()
    assert w.db.attempts == ["wrong"]


def test_a_secret_without_host_takes_it_from_each_calls_arguments() -> None:
    w = World("pw", AWSCURRENT="pw")
    w.client.versions["rds!db"] = {
        "AWSCURRENT": ("v1", json.dumps({"username": "app", "password": "pw"}))
    }
    seen: list[str] = []

    def connect(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        seen.append(creds.host)
        return "conn"

    connector = RotationAwareConnector(
        w.cache,
        "rds!db",
        connect,
        classify,
        defaults=lambda given: {"engine": "mysql", **given},
    )
    connector.connect(host="from-the-call")
    assert seen == ["from-the-call"]


def test_credentials_the_driver_cannot_encode_are_an_invalid_secret_that_quotes_nothing() -> None:
    w = World("pässwörd€", AWSCURRENT="pässwörd€")

    def latin1_only(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        creds.password.encode("latin-1")  # what PyMySQL does with a password
        return "conn"

    w.connector._connect = latin1_only
    with pytest.raises(SecretValueError, match="cannot send") as info:
        w.connector.connect()
    assert "€" not in str(info.value)
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__


def test_close_while_secrets_manager_is_asked_completes_every_caller_cleanly() -> None:
    """close() settles the fetches in flight; the calls that were running them finish without
    settling them a second time (which raised InvalidStateError)."""
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    w.connector.credentials()
    w.client.gate.clear()  # the next Secrets Manager call blocks
    outcomes: list[object] = []

    def connect() -> None:
        try:
            outcomes.append(w.connector.connect())
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            outcomes.append(exc)

    threads = [threading.Thread(target=connect) for _ in range(3)]
    for thread in threads:
        thread.start()
    while w.client.describes == 0:
        time.sleep(0.001)
    time.sleep(0.05)  # the others wait on that call
    w.cache.close()
    w.client.gate.set()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 3
    for outcome in outcomes:  # logged in, or told the cache closed: nothing else
        assert outcome == "conn:new" or isinstance(outcome, SecretCacheError), outcome


def test_async_waits_for_a_probe_on_the_loop_and_close_is_not_a_cancellation() -> None:
    w = AsyncWorld("right", AWSCURRENT="new")

    async def main() -> None:
        lock = w.aconnector._state_for(w.aconnector.credentials()).probe_lock("v-new")
        lock.acquire()  # another caller is probing these credentials
        waiting = [asyncio.create_task(w.aconnector.connect()) for _ in range(8)]
        await asyncio.sleep(0.05)
        # Eight waiters hold none of the cache's 4 threads: a fetch still runs at once.
        assert w.cache.executor.submit(lambda: "free").result(timeout=1) == "free"
        for task in waiting:
            task.cancel()
        await asyncio.gather(*waiting, return_exceptions=True)
        lock.release()

    asyncio.run(main())


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_login_is_probed_has_its_own_locks() -> None:
    w = World("new", AWSCURRENT="new")
    w.connector._state_for(w.connector.credentials()).probe_lock(
        "v-new"
    ).acquire()  # a parent thread is trying "new"
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never return into pytest
        code = 1
        try:
            code = 0 if w.connector.connect() == "conn:new" else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_async_callers_whose_fetch_close_dropped_are_told_so_not_cancelled() -> None:
    w = AsyncWorld("new", AWSCURRENT="new")
    w.client.gate.clear()  # every Secrets Manager call blocks: 4 run, the rest wait in line

    async def main() -> list[BaseException | str]:
        tasks = [asyncio.create_task(w.aconnector.connect()) for _ in range(10)]
        while w.client.gets == 0:
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.05)
        w.cache.close()  # drops the queued fetches
        w.client.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcomes = asyncio.run(main())
    assert not any(isinstance(o, asyncio.CancelledError) for o in outcomes), outcomes
    assert all(o == "conn:new" or isinstance(o, SecretCacheError) for o in outcomes), outcomes


def test_a_login_that_raced_the_change_does_not_vouch_for_old_credentials() -> None:
    """Login A with "old" began before the password changed and returns after B's refusal of
    "old" was recorded: "old" stays refused, so later callers do not all try it again."""
    from client_lib.cache import SecretValue
    from client_lib.fallback import FallbackState, Result

    clock, policy = FakeClock(), FallbackPolicy()
    state = FallbackState(clock)
    old = SecretValue("app/db", "v-old", ("AWSCURRENT",), secret("old"), None)
    began_a = clock.now
    clock.now += 0.1
    state.record("AWSCURRENT", old, Result(refused=Refused()), started=clock.now)  # B, refused
    clock.now += 0.1
    state.record("AWSCURRENT", old, Result(connection="a"), started=began_a)  # A, finished late
    assert state.is_refused("v-old", policy)
    assert not state.is_good("v-old", policy)


def test_one_connect_makes_two_refused_logins_at_most_whatever_the_credentials() -> None:
    """AWSCURRENT logged in moments ago (a busy application), then the password was changed by
    hand while a failed rotation left AWSPENDING behind: still two refusals, not three."""
    w = World("cur", AWSCURRENT="cur", AWSPENDING="stuck", AWSPREVIOUS="prev")
    assert w.connector.connect() == "conn:cur"
    w.db.password = "changed-by-hand"
    with pytest.raises(AuthenticationFailed, match="2 refused"):
        w.connector.connect()
    assert w.db.attempts == ["cur", "cur", "stuck"]


def test_connectors_with_other_policies_share_what_they_were_refused() -> None:
    w = World("right", AWSCURRENT="wrong")
    other = RotationAwareConnector(
        w.cache, "app/db", w.db.connect, classify, policy=FallbackPolicy(budget=3.0)
    )
    with pytest.raises(AuthenticationFailed):
        w.connector.connect()
    with pytest.raises(AuthenticationFailed, match="refused recently"):
        other.connect()
    assert w.db.attempts == ["wrong"]


def test_a_refusal_at_one_server_says_nothing_about_another() -> None:
    """A lagging replica refuses the new password: the writer's connections go on."""
    w = World("new", AWSCURRENT="new")
    replica_attempts: list[str] = []

    def connect(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        if overrides.get("host") == "replica":
            replica_attempts.append(creds.password)
            raise Refused("the replica has the old password still")
        return w.db.connect(creds, timeout, overrides)

    connector = RotationAwareConnector(w.cache, "app/db", connect, classify)
    with pytest.raises(AuthenticationFailed):
        connector.connect(host="replica")
    assert connector.connect() == "conn:new"  # the secret's host: tried, not "refused recently"
    assert replica_attempts == ["new"]


def test_a_refusal_in_no_known_language_is_acted_on_but_not_remembered() -> None:
    """The password was sent and the server answered in a language no catalog knows: the other
    versions are tried in this call; if none logs in, the driver's own error is raised, and
    the next call tries AWSCURRENT again (it may have been a connection limit, not the
    password)."""

    class Unclear(Exception):
        pass

    def unclear(exc: BaseException) -> LoginFailure | None:
        return LoginFailure.PROBABLY_AUTHENTICATION if isinstance(exc, Unclear) else None

    w = World("x", AWSCURRENT="cur")
    attempts: list[str] = []

    def connect(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        attempts.append(creds.password)
        raise Unclear("xyzzy")

    connector = RotationAwareConnector(w.cache, "app/db", connect, unclear)
    for _ in range(2):
        with pytest.raises(Unclear):
            connector.connect()
    assert attempts == ["cur", "cur"]


def test_a_failed_fetch_of_another_version_is_unavailable_not_refused() -> None:
    w = World("new", AWSCURRENT="old", AWSPENDING="new")
    w.connector.credentials()
    real_get = w.client.get_secret_value

    def throttled(**kwargs: Any) -> Any:
        if kwargs.get("VersionId") == "v-new":
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "x"}}, "Get")
        return real_get(**kwargs)

    w.client.get_secret_value = throttled  # type: ignore[method-assign,assignment]
    with pytest.raises(SecretCacheError) as info:
        w.connector.connect()
    assert not isinstance(info.value, AuthenticationFailed)
    assert info.value.transient


def test_a_caller_overtaken_by_a_rotation_waits_for_another_callers_login() -> None:
    """Seen in the zero-failure harness: AWSCURRENT "b" (proven) is refused (a rotation
    finished: "c" is current and "d" pending); the caller probes "d" (refused: setSecret has not
    run yet), setSecret runs, and "c" is refused too. Past its two refusals the caller must not
    try "d" again itself; another caller, whose "d" refusal is outdated by the later "c" one,
    retries "d" once and logs in, and the first caller uses that proof instead of failing."""
    w = World("b", AWSCURRENT="b")
    w.db.seconds_per_login = 0.01
    assert w.connector.connect() == "conn:b"
    w.set(AWSPREVIOUS="b", AWSCURRENT="c", AWSPENDING="d")
    w.db.password = "c"
    other: list[object] = []
    real_connect = w.db.connect

    def connect(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        try:
            return real_connect(creds, timeout, overrides)
        finally:
            if creds.password == "d" and w.db.password == "c":
                w.db.password = "d"  # setSecret, just after this caller's probe of "d"
            elif creds.password == "c" and not other:
                helper = threading.Thread(target=lambda: other.append(w.connector.connect()))
                other.append(helper)
                helper.start()

    w.db.connect = connect  # type: ignore[method-assign]
    w.connector = RotationAwareConnector(w.cache, "app/db", w.db.connect, classify)
    assert w.connector.connect() == "conn:d"
    helper = other[0]
    assert isinstance(helper, threading.Thread)
    helper.join(5)
    assert other[1:] == ["conn:d"]
    # b, d and c refused once each (the first caller's two counted), "d" retried once.
    assert w.db.attempts[1:] == ["b", "d", "c", "d", "d"]


def test_a_wrong_password_at_every_stage_is_not_retried_back_and_forth() -> None:
    """Every stage's password wrong (a failed rotation left AWSPENDING; the password changed by
    hand): refusals at different moments must not make each version look 'outdated' in turn."""
    w = World("changed-by-hand", AWSCURRENT="cur", AWSPENDING="stuck", AWSPREVIOUS="prev")
    w.db.seconds_per_login = 0.01
    for _ in range(5):
        with pytest.raises(AuthenticationFailed):
            w.connector.connect()
    # Each version once (AWSPENDING is retried only when its refusal predates AWSCURRENT's, as
    # when setSecret runs between them), then nothing until retry_refused_after.
    assert w.db.attempts == ["cur", "stuck", "prev"]
    for _ in range(20):
        with pytest.raises(AuthenticationFailed):
            w.connector.connect()
    assert len(w.db.attempts) == 3


def test_waiting_for_another_callers_probe_comes_off_the_budget_and_is_not_a_refusal() -> None:
    """Found by review: a caller that waited on another caller's probe got the full, stale
    timeout afterwards (1.9 s for a 1 s budget), and with nothing refused it was told
    AuthenticationFailed. Now its attempt gets what remains, and it is a transient error."""
    release = threading.Event()
    w = World("right", FallbackPolicy(budget=1.0), AWSCURRENT="right")
    w.cache = SecretCache(w.client, ttl=300, jitter=0.0)  # real time: the budget is real time

    def hung(creds: Credentials, timeout: float, overrides: Mapping[str, Any]) -> str:
        release.wait(timeout)  # a server that does not answer within the timeout
        w.db.timeouts.append(timeout)
        raise ConnectionRefusedError("timed out")

    w.db.connect = hung  # type: ignore[method-assign]
    w.connector = RotationAwareConnector(
        w.cache, "app/db", w.db.connect, classify, policy=FallbackPolicy(budget=1.0)
    )
    outcomes: list[tuple[type[BaseException], float]] = []

    def call() -> None:
        began = time.monotonic()
        try:
            w.connector.connect()
        except Exception as exc:  # noqa: BLE001 - the outcome is the point
            outcomes.append((type(exc), time.monotonic() - began))

    threads = [threading.Thread(target=call) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len(outcomes) == 3
    assert max(seconds for _, seconds in outcomes) < 1.5  # one budget, not two
    kinds = {kind for kind, _ in outcomes}
    assert AuthenticationFailed not in kinds
    assert kinds <= {ConnectionRefusedError, SecretCacheError}
