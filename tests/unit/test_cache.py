"""The secret cache with a fake clock and a counting client: no sockets, no sleeps."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from client_lib import SecretCache, SecretCacheError

TTL = 100.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingClient:
    """Secrets by id and stage; counts calls; can fail or block."""

    def __init__(self) -> None:
        self.versions: dict[str, dict[str, tuple[str, str]]] = {
            "app/db": {
                "AWSCURRENT": ("v1", '{"password": "pw-one"}'),
                "AWSPENDING": ("v2", '{"password": "pw-two"}'),
            },
        }
        self.gets = 0
        self.describes = 0
        self.fail_with: str | None = None
        self.gate = threading.Event()
        self.gate.set()

    def _maybe_fail(self, operation: str) -> None:
        self.gate.wait(10)
        if self.fail_with == "network":
            raise EndpointConnectionError(endpoint_url="https://secretsmanager")
        if self.fail_with:
            raise ClientError({"Error": {"Code": self.fail_with, "Message": "x"}}, operation)

    def get_secret_value(
        self, SecretId: str, VersionStage: str | None = None, VersionId: str | None = None
    ) -> dict[str, Any]:
        self.gets += 1
        self._maybe_fail("GetSecretValue")
        stages = self.versions.get(SecretId, {})
        found = [
            (stage, version, text)
            for stage, (version, text) in stages.items()
            if stage == VersionStage or version == VersionId
        ]
        if not found:
            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no such version"}},
                "GetSecretValue",
            )
        _, version, text = found[0]
        labels = [stage for stage, (v, _) in stages.items() if v == version]
        return {"VersionId": version, "VersionStages": labels, "SecretString": text}

    def describe_secret(self, SecretId: str) -> dict[str, Any]:
        self.describes += 1
        self._maybe_fail("DescribeSecret")
        stages: dict[str, list[str]] = {}
        for stage, (version, _) in self.versions[SecretId].items():
            stages.setdefault(version, []).append(stage)
        return {"VersionIdsToStages": stages}


def make(client: CountingClient, clock: FakeClock, **kwargs: Any) -> SecretCache:
    options: dict[str, Any] = {
        "ttl": TTL,
        "jitter": 0.0,
        "refresh_ahead": 0.0,
        "random": lambda: 0.5,
    }
    options.update(kwargs)
    return SecretCache(client, clock=clock, **options)


def test_miss_then_hits_and_stage_keys() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    assert cache.get_json("app/db")["password"] == "pw-one"
    for _ in range(100):
        assert cache.get("app/db").version_id == "v1"
    assert cache.get_json("app/db", "AWSPENDING")["password"] == "pw-two"
    assert client.gets == 2
    assert cache.stats.hits == 100
    assert cache.stats.misses == 2


def test_expiry_asks_describe_first_and_fetches_only_a_new_version() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    clock.now += TTL + 1
    assert cache.get("app/db").version_id == "v1"
    assert (client.describes, client.gets) == (1, 1)  # same version: no GetSecretValue
    client.versions["app/db"]["AWSCURRENT"] = ("v3", '{"password": "pw-three"}')
    clock.now += TTL + 1
    assert cache.get_json("app/db")["password"] == "pw-three"
    assert (client.describes, client.gets) == (2, 2)


@pytest.mark.parametrize(("draw", "expiry"), [(0.0, TTL), (0.5, 1.1 * TTL), (0.999, 1.2 * TTL)])
def test_ttl_jitter_stays_in_bounds(draw: float, expiry: float) -> None:
    # Jitter only lengthens the TTL: never more than one refresh per TTL.
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock, jitter=0.2, random=lambda: draw)
    start = clock.now
    cache.get("app/db")
    clock.now = start + expiry - 0.5
    cache.get("app/db")
    assert client.describes == 0
    clock.now = start + expiry + 0.5
    cache.get("app/db")
    assert client.describes == 1


def test_refresh_ahead_serves_at_once_and_refreshes_in_the_background() -> None:
    client, clock = CountingClient(), FakeClock()
    executor = ThreadPoolExecutor(1)
    cache = make(client, clock, refresh_ahead=0.2, executor=executor)
    cache.get("app/db")
    clock.now += 1.1 * TTL  # past the TTL, within the grace: served while refreshing
    client.gate.clear()  # the refresh will block
    value = cache.get("app/db")  # returns without waiting for it
    assert value.version_id == "v1"
    assert client.describes <= 1
    client.gate.set()
    executor.shutdown(wait=True)
    assert client.describes == 1
    assert cache.stats.refreshes == 1


def test_single_flight_under_32_threads() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    client.gate.clear()
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("app/db").version_id))
        for _ in range(32)
    ]
    for thread in threads:
        thread.start()
    client.gate.set()
    for thread in threads:
        thread.join(10)
    assert results == ["v1"] * 32
    assert client.gets == 1


@pytest.mark.parametrize("failure", ["ThrottlingException", "InternalServiceError", "network"])
def test_stale_value_on_transient_errors_up_to_the_maximum(failure: str) -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock, max_staleness=500.0)
    cache.get("app/db")
    client.fail_with = failure
    clock.now += 400
    assert cache.get("app/db").version_id == "v1"
    assert cache.stats.stale_served == 1
    clock.now += 200  # 600 s after the fetch: too stale
    with pytest.raises(SecretCacheError, match="transient") as info:
        cache.get("app/db")
    assert info.value.transient
    assert "pw-one" not in str(info.value)


def test_permanent_errors_are_never_hidden_by_a_stale_value() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    client.fail_with = "AccessDeniedException"
    clock.now += TTL + 1
    with pytest.raises(SecretCacheError, match="AccessDeniedException, permanent"):
        cache.get("app/db")


def test_lru_bound() -> None:
    client, clock = CountingClient(), FakeClock()
    for name in ("a", "b", "c"):
        client.versions[name] = {"AWSCURRENT": ("v-" + name, "{}")}
    cache = make(client, clock, max_secrets=2)
    cache.get("a")
    clock.now += 1
    cache.get("b")
    clock.now += 1
    cache.get("a")  # a is now the most recently used
    clock.now += 1
    cache.get("c")  # evicts b
    assert cache.stats.evictions == 1
    gets = client.gets
    cache.get("a")
    assert client.gets == gets
    cache.get("b")
    assert client.gets == gets + 1


def test_values_never_show_the_secret_and_parse_once() -> None:
    cache = make(CountingClient(), FakeClock())
    value = cache.get("app/db")
    assert "pw-one" not in repr(value)
    assert value.json() is value.json()


def test_refresh_and_invalidate() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    client.versions["app/db"]["AWSCURRENT"] = ("v9", "{}")
    assert cache.refresh("app/db").version_id == "v9"
    cache.invalidate("app/db")
    cache.get("app/db")
    assert client.gets == 2 + 1


def test_a_rotation_costs_one_describe_and_one_get_beyond_steady_state() -> None:
    # Single user: the login fails between setSecret and finishSecret; the forced refreshes of
    # AWSCURRENT and AWSPENDING share one DescribeSecret, and once finishSecret moves AWSCURRENT
    # to that version, the periodic refresh finds it already cached.
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    client.versions["app/db"]["AWSPENDING"] = ("v2", '{"password": "pw-two"}')
    failed_at = clock.now
    assert cache.refresh("app/db", fetched_since=failed_at).version_id == "v1"
    pending = cache.refresh("app/db", "AWSPENDING", fetched_since=failed_at)
    pending.json()
    assert (pending.version_id, client.describes, client.gets) == ("v2", 1, 2)
    client.versions["app/db"] = {
        "AWSCURRENT": ("v2", '{"password": "pw-two"}'),
        "AWSPREVIOUS": ("v1", '{"password": "pw-one"}'),
    }
    clock.now += TTL + 1
    current = cache.get("app/db")
    assert current.version_id == "v2"
    assert current.stages == ("AWSCURRENT",)
    assert current.json() is pending.json()  # the same parsed value, not a copy
    assert (client.describes, client.gets) == (2, 2)  # the periodic DescribeSecret only


def test_a_forced_refresh_needs_a_describe_made_after_the_failure() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    for _ in range(2):
        clock.now += 1
        cache.refresh("app/db", fetched_since=clock.now)
    assert client.describes == 2


def test_a_stage_the_describe_lacks_costs_no_get() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    cache.get("app/db")
    failed_at = clock.now
    cache.refresh("app/db", fetched_since=failed_at)
    with pytest.raises(SecretCacheError, match="no version at AWSPREVIOUS") as info:
        cache.refresh("app/db", "AWSPREVIOUS", fetched_since=failed_at)
    assert not info.value.transient
    assert (client.describes, client.gets) == (1, 1)


def test_a_caller_that_read_the_old_entry_starts_no_second_refresh() -> None:
    # A thread reads the due entry, is descheduled while the refresh completes, then resumes.
    client, clock = CountingClient(), FakeClock()
    executor = ThreadPoolExecutor(1)
    cache = make(client, clock, refresh_ahead=0.2, executor=executor)
    cache.get("app/db")
    clock.now += TTL + 1
    old_entry = cache._entries[("app/db", "AWSCURRENT")]
    cache.refresh("app/db")
    assert client.describes == 1
    assert cache._slow_get("app/db", "AWSCURRENT", old_entry).version_id == "v1"  # due: refresh
    clock.now += 1.5 * TTL  # expired: a miss
    expired = cache._entries[("app/db", "AWSCURRENT")]
    cache.refresh("app/db")
    assert cache._slow_get("app/db", "AWSCURRENT", expired).version_id == "v1"
    executor.shutdown(wait=True)
    assert client.describes == 2


def test_close_completes_waiters_and_later_fetches_raise() -> None:
    client, clock = CountingClient(), FakeClock()
    with make(client, clock) as cache:
        cache.get("app/db")
        client.gate.clear()  # the next fetch blocks in the first caller's thread
        clock.now += 2 * TTL
        released: list[BaseException] = []

        def get() -> None:
            try:
                cache.get("app/db")
            except SecretCacheError as exc:
                released.append(exc)

        fetcher = threading.Thread(target=get)
        fetcher.start()
        while not cache._inflight:
            pass
        waiter = threading.Thread(target=get)  # joins the fetch in flight
        waiter.start()
    # Leaving the block closed the cache: the waiting caller is released, not left hanging.
    waiter.join(5)
    assert not waiter.is_alive()
    assert released
    client.gate.set()
    fetcher.join(5)
    with pytest.raises(SecretCacheError, match="closed"):
        cache.get("app/db", "AWSPENDING")
    cache.close()  # idempotent


def test_a_source_that_raises_anything_never_leaves_a_key_hanging() -> None:
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    real = client.get_secret_value

    def broken(**kwargs: Any) -> dict[str, Any]:
        raise KeyError("a bug in the source")

    client.get_secret_value = broken  # type: ignore[method-assign,assignment]
    with pytest.raises(SecretCacheError, match="failed"):
        cache.get("app/db")
    client.get_secret_value = real  # type: ignore[method-assign]
    assert not cache._inflight, "the key stayed in flight after an unexpected error"
    assert cache.get("app/db").version_id == "v1"


def test_a_shut_down_executor_does_not_hang_the_key() -> None:
    client, clock = CountingClient(), FakeClock()
    executor = ThreadPoolExecutor(1)
    cache = make(client, clock, refresh_ahead=0.5, executor=executor)
    cache.get("app/db")
    executor.shutdown()
    clock.now += TTL + 1  # due: a background refresh cannot be submitted
    assert cache.get("app/db").version_id == "v1"
    clock.now += TTL  # expired: fetched in the caller's thread
    assert not cache._inflight
    assert cache.get("app/db").version_id == "v1"


def test_describe_answers_are_bounded_like_entries() -> None:
    client, clock = CountingClient(), FakeClock()
    for n in range(10):
        client.versions[f"s{n}"] = {"AWSCURRENT": (f"v{n}", "{}")}
    cache = make(client, clock, max_secrets=3)
    for n in range(10):
        cache.refresh(f"s{n}", fetched_since=clock.now)
        clock.now += 1
    assert len(cache._descriptions) <= 3


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_starts_clean_with_a_refresh_in_flight() -> None:
    """The parent forks while a background refresh is in flight (its client blocked): the child
    has no thread to finish it, so it must not wait for it, and gets a new client."""
    clients: list[CountingClient] = []

    def factory() -> CountingClient:
        clients.append(CountingClient())
        return clients[-1]

    clock = FakeClock()
    cache = SecretCache(factory, clock=clock, ttl=TTL, jitter=0.0, refresh_ahead=0.5)
    cache.get("app/db")
    clients[0].gate.clear()
    clock.now += TTL + 1
    cache.get("app/db")  # starts the background refresh, which blocks
    assert cache._inflight
    pid = os.fork()
    if pid == 0:  # the child: report through the exit status, never return into pytest
        code = 1
        try:
            clock.now += TTL  # expired: needs a fetch of its own
            value = cache.get("app/db")
            code = 0 if (value.version_id, len(clients)) == ("v1", 2) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    clients[0].gate.set()
    assert os.waitstatus_to_exitcode(status) == 0


def test_aws_caching_source_refreshes_on_demand() -> None:
    from client_lib import AwsCachingSource

    class FakeAwsCache:
        def __init__(self) -> None:
            self.value = '{"password": "pw-one"}'
            self.refreshes: list[str] = []

        def get_secret_string(self, secret_id: str, stage: str) -> str | None:
            return self.value if stage == "AWSCURRENT" else None

        def get_secret_binary(self, secret_id: str, stage: str) -> bytes | None:
            return None

        def refresh_secret_now(self, secret_id: str) -> bool:
            self.refreshes.append(secret_id)
            return True

    aws, clock = FakeAwsCache(), FakeClock()
    cache = SecretCache(AwsCachingSource(aws), clock=clock, ttl=TTL)
    first = cache.get("app/db")
    aws.value = '{"password": "pw-two"}'
    assert cache.get("app/db").version_id == first.version_id  # a hit: no refresh
    clock.now += 1  # a login fails now
    forced = cache.refresh("app/db", fetched_since=clock.now)
    assert forced.version_id != first.version_id
    assert aws.refreshes == ["app/db"]
    cache.refresh("app/db", fetched_since=clock.now)  # the same moment: shared, not repeated
    assert aws.refreshes == ["app/db"]
    with pytest.raises(SecretCacheError):
        cache.refresh("app/db", "AWSPENDING", fetched_since=clock.now)


def test_concurrent_looks_share_one_describe_in_flight() -> None:
    """Callers that need a DescribeSecret made after a moment join one already in flight that
    started after it; a caller that needs a later one starts its own."""
    client, clock = CountingClient(), FakeClock()
    cache = make(client, clock)
    client.gate.clear()  # the describe blocks until every thread asked
    since = clock.now
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.stage_values, "app/db", since) for _ in range(8)]
        while client.describes == 0:
            threading.Event().wait(0.001)
        threading.Event().wait(0.05)  # the others arrive while it is in flight
        client.gate.set()
        views = [future.result(timeout=10) for future in futures]
    assert client.describes == 1
    assert all(view is not None and set(view) == {"AWSCURRENT", "AWSPENDING"} for view in views)
    clock.now += 1
    cache.stage_values("app/db", clock.now)  # after the last one: a new look
    assert client.describes == 2
