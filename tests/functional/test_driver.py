"""The local driver: full rotations, refusal while one is in progress, re-driving after faults."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from keyturn_local.driver import RotationFailed, StepRecord, rotate
from rotation_lambdas import (
    DatabaseSecret,
    PasswordPolicy,
    ProtocolError,
    RotationEngine,
    SecretsStore,
    SingleUserStrategy,
)
from tests.support.fakes import FakeAdapter
from tests.support.strict_sm import FaultyClient

from .conftest import LOGGER, TOKENS, World


def db_matches_current(world: World) -> bool:
    current = DatabaseSecret.from_mapping(world.value("AWSCURRENT"))
    return world.db.password_of(current) == current.password


def some_version_logs_in(world: World) -> bool:
    """No lockout: AWSCURRENT, or AWSPENDING once the database has it, logs in."""
    versions = world.versions()
    for version_id, stages in versions.items():
        if "AWSCURRENT" in stages or "AWSPENDING" in stages:
            stage = "AWSCURRENT" if "AWSCURRENT" in stages else "AWSPENDING"
            try:
                secret = DatabaseSecret.from_mapping(world.value(stage, version_id))
            except world.client.exceptions.ResourceNotFoundException:
                continue  # the pending stub has no value before createSecret
            if world.db.password_of(secret) == secret.password:
                return True
    return False


def test_a_full_rotation(world: World) -> None:
    before = world.value("AWSCURRENT")
    report = rotate(world.client.sm, world.arn, world.engine, lambda_arn=world.function_arn)
    assert report.attempts == 1
    assert [r.step.value for r in report.steps] == [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
    ]
    assert report.after[report.token] == ["AWSCURRENT"]
    assert world.value("AWSPREVIOUS") == before
    assert db_matches_current(world)


def test_ten_rotations_in_a_row(world: World) -> None:
    passwords = set()
    for _ in range(10):
        rotate(world.client.sm, world.arn, world.engine, lambda_arn=world.function_arn)
        assert db_matches_current(world)
        passwords.add(world.value("AWSCURRENT")["password"])
    assert len(passwords) == 10


def test_refuses_a_second_rotation_and_resumes_the_first(world: World) -> None:
    world.start_rotation(TOKENS[0])
    world.run("createSecret", TOKENS[0])
    world.run("setSecret", TOKENS[0])  # interrupted after setSecret
    with pytest.raises(ProtocolError, match="previous rotation is not complete"):
        rotate(world.client.sm, world.arn, world.engine)
    report = rotate(world.client.sm, world.arn, world.engine, resume=True)
    assert report.token == TOKENS[0]
    assert db_matches_current(world)
    assert world.db.changes == 1


FAULTS = [
    (op, nth, when)
    for op, counts in {
        "describe_secret": (1, 2, 3, 4),
        "get_secret_value": (1, 2, 3, 4, 5),
        "get_random_password": (1,),
        "put_secret_value": (1,),
        "update_secret_version_stage": (1, 2, 3),  # setSecret's label, AWSCURRENT, label off
    }.items()
    for nth in counts
    for when in ("before", "after")
]


@pytest.mark.parametrize(("operation", "nth", "when"), FAULTS)
def test_rotation_converges_after_a_secrets_manager_fault(
    world: World, operation: str, nth: int, when: str
) -> None:
    faulty = FaultyClient(world.client._client, operation, nth, when)
    engine = RotationEngine(
        SingleUserStrategy(FakeAdapter(world.db)),
        SecretsStore(faulty.sm),
        policy=PasswordPolicy(),
        logger=LOGGER,
    )
    checks: list[bool] = []
    refused: list[int] = [0]

    def after_step(record: StepRecord) -> None:
        checks.append(some_version_logs_in(world))
        refused.append(world.db.refused)

    # Faults hit the function's calls only: the driver plays the (reliable) service.
    report = rotate(
        world.client.sm, world.arn, engine, lambda_arn=world.function_arn, on_step=after_step
    )
    assert faulty.fired, "the fault was never injected"
    # A label lost after it was written costs one attempt more (the re-run checks AWSPENDING,
    # finds it unset, takes the label off); never more than one refused login a step.
    lost_label = (operation, nth, when) == ("update_secret_version_stage", 1, "after")
    assert report.attempts == (3 if lost_label else 2)
    assert max(b - a for a, b in itertools.pairwise(refused)) <= 1
    assert all(checks), "a moment with no version that logs in"
    assert db_matches_current(world)
    assert not any("AWSPENDING" in s and "AWSCURRENT" not in s for s in world.versions().values())
    # The next rotation starts and succeeds.
    rotate(world.client.sm, world.arn, world.engine)
    assert db_matches_current(world)


def test_rotation_converges_when_the_connection_drops_after_the_password_change(
    world: World,
) -> None:
    world.db.fail_after_change = 1
    report = rotate(world.client.sm, world.arn, world.engine, lambda_arn=world.function_arn)
    assert report.attempts == 2
    assert world.db.changes == 1  # the re-run found the pending password already set
    assert db_matches_current(world)


def test_gives_up_after_max_attempts(world: World) -> None:
    world.db.unreachable = True
    with pytest.raises(RotationFailed) as info:
        rotate(
            world.client.sm, world.arn, world.engine, lambda_arn=world.function_arn, max_attempts=2
        )
    report = info.value.report
    assert report.attempts == 2
    assert all(r.step.value in ("createSecret", "setSecret") for r in report.steps)
    assert "unreachable" in (report.steps[-1].error or "")
    world.db.unreachable = False
    assert db_matches_current(world)  # nothing changed on the database: no lockout


def test_step_records_reach_the_callback(world: World) -> None:
    seen: list[Any] = []
    rotate(
        world.client.sm, world.arn, world.engine, lambda_arn=world.function_arn, on_step=seen.append
    )
    assert [r.step.value for r in seen] == [
        "createSecret",
        "setSecret",
        "testSecret",
        "finishSecret",
    ]
    assert all(r.error is None and r.seconds >= 0 for r in seen)
