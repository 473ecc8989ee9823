from __future__ import annotations

from typing import Any

import pytest

from rotation_lambdas import EventError, RotationEvent, Step

TOKEN = "0123456789abcdef0123456789abcdef"


def event(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "Step": "setSecret",
        "SecretId": "arn:aws:x",
        "ClientRequestToken": TOKEN,
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not ...}


@pytest.mark.parametrize("step", list(Step))
def test_each_step_parses(step: Step) -> None:
    parsed = RotationEvent.parse(event(Step=step.value))
    assert parsed.step is step
    assert parsed.secret_id == "arn:aws:x"
    assert parsed.token == TOKEN
    assert parsed.rotation_token is None


def test_rotation_token_is_kept_and_round_trips() -> None:
    parsed = RotationEvent.parse(event(RotationToken="rt-123"))
    assert parsed.rotation_token == "rt-123"
    assert RotationEvent.parse(parsed.as_dict()) == parsed


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        (event(Step=...), "'Step' is missing"),
        (event(SecretId=...), "'SecretId' is missing"),
        (event(ClientRequestToken=...), "'ClientRequestToken' is missing"),
        (event(Step="deleteSecret"), "'Step' must be one of"),
        (event(Step=3), "'Step' must be a non-empty string"),
        (event(SecretId=""), "'SecretId' must be a non-empty string"),
        (event(SecretId=["a"]), "'SecretId' must be a non-empty string"),
        (event(ClientRequestToken="short"), "'ClientRequestToken' must be 32 to 64"),
        (event(ClientRequestToken="x" * 65), "'ClientRequestToken' is longer than 64"),
        (event(SecretId="a" * 3000), "'SecretId' is longer than 2048"),
        (event(RotationToken=""), "'RotationToken' must be a non-empty string"),
        (event(RotationToken=7), "'RotationToken' must be a non-empty string"),
    ],
)
def test_malformed_events_name_the_field(raw: dict[str, Any], names: str) -> None:
    with pytest.raises(EventError, match=names):
        RotationEvent.parse(raw)


@pytest.mark.parametrize("raw", [None, "createSecret", ["Step"], 42])
def test_non_objects_are_refused(raw: object) -> None:
    with pytest.raises(EventError, match="must be a JSON object"):
        RotationEvent.parse(raw)


def test_errors_do_not_echo_values() -> None:
    hostile = "'; DROP TABLE users; --" + "z" * 40
    with pytest.raises(EventError) as info:
        RotationEvent.parse(event(Step=hostile))
    assert hostile not in str(info.value)


def test_the_sample_events_parse() -> None:
    import json
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "sam" / "events"
    steps = {RotationEvent.parse(json.loads(p.read_text())).step for p in folder.glob("*.json")}
    assert steps == set(Step)
