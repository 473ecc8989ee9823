"""Bad input: a clear error naming the problem, nothing changed, no value leaked."""

from __future__ import annotations

import base64
import json
from pathlib import Path
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


CORPUS = json.loads((Path(__file__).parents[1] / "data" / "hostile_inputs.json").read_text())
ERRORS: dict[str, type[RotationError]] = {
    "EventError": EventError,
    "SecretFormatError": SecretFormatError,
    "ConfigurationError": ConfigurationError,
}
HUGE, LONG = "x" * 100_000, "y" * 2_000


def expand(value: Any) -> Any:
    if isinstance(value, str):
        return (
            value.replace("$HUGE", HUGE)
            .replace("$LONG", LONG)
            .replace("$PASSWORD", SECRET_PASSWORD)
        )
    return value


def mutated(base: dict[str, Any], case: dict[str, Any]) -> dict[str, Any]:
    out = {**base, **{k: expand(v) for k, v in case.get("set", {}).items()}}
    for key in case.get("remove", []):
        out.pop(key, None)
    return out


def cases(section: str) -> list[Any]:
    return [pytest.param(case, id=case["name"]) for case in CORPUS[section]]


@pytest.mark.parametrize("case", cases("events"))
def test_hostile_events_make_no_call(world: World, case: dict[str, Any]) -> None:
    world.start_rotation(T)
    raw = expand(case["raw"]) if "raw" in case else mutated(event(world), case)
    made = expect_clean_failure(world, raw, ERRORS[case["error"]], case["message"])
    assert made == []


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


@pytest.mark.parametrize("case", cases("current_secrets"))
def test_hostile_current_secrets(world: World, case: dict[str, Any]) -> None:
    text = expand(case["text"]) if "text" in case else json.dumps(mutated(APP_SECRET, case))
    replace_current(world, text)
    expect_clean_failure(world, event(world), ERRORS[case["error"]], case["message"])


@pytest.mark.parametrize("case", cases("pending_changes"))
def test_hostile_pending_values_never_reach_the_database(
    world: World, case: dict[str, Any]
) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    pending = world.value("AWSPENDING", T)
    text = expand(case["text"]) if "text" in case else json.dumps(mutated(pending, case))
    world.client._client.put_secret_value(  # moto's leniency, used on purpose: a tampered value
        SecretId=world.arn, ClientRequestToken=T, SecretString=text, VersionStages=["AWSPENDING"]
    )
    expect_clean_failure(world, event(world, "setSecret"), ERRORS[case["error"]], case["message"])
    # testSecret only tries to log in with the pending value: refused, nothing changed.
    expect_clean_failure(world, event(world, "testSecret"), RotationError, "AWSPENDING")
    assert world.db.changes == 0


def test_the_corpus_is_large_enough_to_matter() -> None:
    sizes = {section: len(CORPUS[section]) for section in CORPUS if section != "_about"}
    assert sizes["events"] >= 15
    assert sizes["current_secrets"] >= 20
    assert sizes["pending_changes"] >= 5
    assert sizes["identifiers"] >= 10


def test_binary_current_secret(world: World) -> None:
    replace_current(world, binary=base64.b64encode(SECRET_PASSWORD.encode()))
    expect_clean_failure(world, event(world), SecretFormatError, "holds binary data")
