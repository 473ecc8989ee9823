"""Each step writes one embedded-metric-format record: outcome, duration and dimensions."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rotation_lambdas import NetworkError

from .conftest import TOKENS, World

T = TOKENS[0]


def emf_records(out: str) -> list[dict[str, Any]]:
    records = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            records.append(json.loads(line))
    return records


def test_every_step_records_success_and_duration(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.start_rotation(T)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        world.run(step, T)
    records = emf_records(capfd.readouterr().out)
    assert [r["Step"] for r in records] == [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
    ]
    for record in records:
        (directive,) = record["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "Keyturn"
        assert set(directive["Dimensions"][0]) >= {"Engine", "Strategy", "Step"}
        names = {m["Name"]: m["Unit"] for m in directive["Metrics"]}
        assert names == {"StepSucceeded": "Count", "StepDuration": "Milliseconds"}
        assert (record["Engine"], record["Strategy"]) == ("postgresql", "single_user")
        assert record["StepSucceeded"] == [1.0]
        assert record["StepDuration"][0] >= 0


def test_a_failed_step_records_its_error_category(
    world: World, capfd: pytest.CaptureFixture[str]
) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    world.db.unreachable = True
    with pytest.raises(NetworkError):
        world.run("setSecret", T)
    failed = emf_records(capfd.readouterr().out)[-1]
    assert failed["Step"] == "setSecret"
    assert failed["StepFailed"] == [1.0]
    assert "StepSucceeded" not in failed
    assert failed["error_category"] == "network"


def test_disabled_metrics_write_nothing_and_warn_never(
    world: World, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    world.start_rotation(T)
    for step in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        world.run(step, T)  # warnings are errors: a leftover dimension would fail here
    assert emf_records(capfd.readouterr().out) == []
