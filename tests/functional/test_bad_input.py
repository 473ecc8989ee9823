"""Bad input: a clear error naming the problem, nothing changed, no value leaked."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rotation_lambdas import (
    ConfigurationError,
    EventError,
    RotationError,
    SecretFormatError,
    StageError,
)

from .conftest import APP_SECRET, TOKENS, World

T = TOKENS[0]


def expect_clean_failure(
    world: World, event: Any, error: type[RotationError], message: str
) -> list[str]:
    """Run the event; return the Secrets Manager calls it made."""
    before = world.snapshot()
    calls = len(world.client.calls)
    with pytest.raises(error, match=message) as info:
        world.engine.run(event)
    made = [name for name, _ in world.client.calls[calls:]]
    assert world.snapshot() == before
    world.leaks.assert_exception_clean(info.value)
    return made


def event(world: World, step: str = "createSecret", token: str = T) -> dict[str, str]:
    return {"Step": step, "SecretId": world.arn, "ClientRequestToken": token}


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("Step"), "'Step' is missing"),
        (lambda e: e.update(Step="rollbackSecret"), "'Step' must be one of"),
        (lambda e: e.pop("SecretId"), "'SecretId' is missing"),
        (lambda e: e.update(ClientRequestToken=""), "'ClientRequestToken' must be a non-empty"),
        (lambda e: e.update(ClientRequestToken=None), "'ClientRequestToken' is missing"),
    ],
)
def test_malformed_events_make_no_call(world: World, mutate: Any, message: str) -> None:
    world.start_rotation(T)
    raw = event(world)
    mutate(raw)
    assert expect_clean_failure(world, raw, EventError, message) == []


def test_event_that_is_not_an_object(world: World) -> None:
    expect_clean_failure(world, ["createSecret"], EventError, "must be a JSON object")


def test_token_not_a_version(world: World) -> None:
    world.start_rotation(T)
    expect_clean_failure(world, event(world, token=TOKENS[5]), StageError, "not a version")


def test_token_not_pending(world: World) -> None:
    old = next(v for v, s in world.versions().items() if "AWSCURRENT" in s)
    world.start_rotation(T)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        world.run(step, T)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        expect_clean_failure(world, event(world, step, old), StageError, "not at AWSPENDING")


def test_rotation_disabled(world: World) -> None:
    arn = world.client.create_secret(Name="norotation", SecretString=json.dumps(APP_SECRET))["ARN"]
    world.client.put_secret_value(
        SecretId=arn,
        ClientRequestToken=T,
        SecretString=json.dumps(APP_SECRET),
        VersionStages=["AWSPENDING"],
    )
    raw = {"Step": "createSecret", "SecretId": arn, "ClientRequestToken": T}
    expect_clean_failure(world, raw, StageError, "rotation is not enabled")


def replace_current(world: World, text: str | None = None, binary: bytes | None = None) -> None:
    """Make AWSCURRENT hold ``text`` (or binary data), then start a rotation."""
    kwargs: dict[str, Any] = {"SecretId": world.arn}
    if binary is not None:
        kwargs["SecretBinary"] = binary
    else:
        kwargs["SecretString"] = text
    world.client.put_secret_value(**kwargs)
    world.start_rotation(T)


SECRET_PASSWORD = APP_SECRET["password"]


@pytest.mark.parametrize(
    ("text", "error", "message"),
    [
        (f"not json at all {SECRET_PASSWORD}", SecretFormatError, "AWSCURRENT is not valid JSON"),
        (f'{{"password": "{SECRET_PASSWORD}", ', SecretFormatError, "AWSCURRENT is not valid JSON"),
        (json.dumps([SECRET_PASSWORD]), SecretFormatError, "must be a JSON object"),
        (json.dumps({**APP_SECRET, "host": None}), SecretFormatError, "key 'host' is missing"),
        (
            json.dumps({k: v for k, v in APP_SECRET.items() if k != "username"}),
            SecretFormatError,
            "key 'username' is missing",
        ),
        (json.dumps({**APP_SECRET, "password": 5}), SecretFormatError, "key 'password'"),
        (json.dumps({**APP_SECRET, "port": "fifty"}), SecretFormatError, "key 'port'"),
        (json.dumps({**APP_SECRET, "engine": "sqlserver-ee"}), SecretFormatError, "key 'engine'"),
        (
            json.dumps({**APP_SECRET, "engine": "mysql"}),
            ConfigurationError,
            "engine 'mysql' is not handled by this postgresql function",
        ),
    ],
)
def test_bad_current_secret(
    world: World, text: str, error: type[RotationError], message: str
) -> None:
    replace_current(world, text)
    expect_clean_failure(world, event(world), error, message)


def test_binary_current_secret(world: World) -> None:
    replace_current(world, binary=base64.b64encode(SECRET_PASSWORD.encode()))
    expect_clean_failure(world, event(world), SecretFormatError, "holds binary data")
