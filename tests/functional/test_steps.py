"""Each step's Secrets Manager effects, and re-running each step, against in-process moto."""

from __future__ import annotations

import json

import pytest

from keyturn_local.driver import clear_pending_label
from rotation_lambdas import (
    AuthenticationError,
    ConfigurationError,
    DatabaseSecret,
    NetworkError,
    StageError,
)
from rotation_lambdas.settings import DEFAULT_EXCLUDE_CHARACTERS
from rotation_lambdas.stages import PASSWORD_SET

from .conftest import APP_SECRET, TOKENS, World

T = TOKENS[0]
ROTATION_TOKEN = "5b0a3c1e-7d0f-4c55-9a57-0c6a2c1f2e3d"


def test_create_secret_stores_a_new_password_and_keeps_other_keys(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    pending = world.value("AWSPENDING", T)
    assert pending["password"] != APP_SECRET["password"]
    assert len(pending["password"]) == 32
    assert not set(pending["password"]) & set(DEFAULT_EXCLUDE_CHARACTERS)
    assert {k: v for k, v in pending.items() if k != "password"} == {
        k: v for k, v in APP_SECRET.items() if k != "password"
    }
    assert world.versions()[T] == ["AWSPENDING"]


def test_create_secret_twice_is_a_no_op(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    first = world.value("AWSPENDING", T)
    world.run("createSecret", T)
    assert world.value("AWSPENDING", T) == first
    assert world.client.count("put_secret_value") == 1
    assert world.client.count("get_random_password") == 1


def test_create_secret_passes_the_rotation_token(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T, RotationToken=ROTATION_TOKEN)
    (put,) = [kw for name, kw in world.client.calls if name == "put_secret_value"]
    assert put["RotationToken"] == ROTATION_TOKEN
    assert put["ClientRequestToken"] == T
    assert put["VersionStages"] == ["AWSPENDING"]


def test_set_secret_changes_the_password_once(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    world.run("setSecret", T)
    pending = DatabaseSecret.from_mapping(world.value("AWSPENDING", T))
    assert world.db.password_of(pending) == pending.password
    world.run("setSecret", T)
    assert world.db.changes == 1


def test_set_secret_tries_no_other_password_than_awscurrent(world: World) -> None:
    """A rotation whose finishSecret ran while the database still has AWSPREVIOUS's password:
    AWSCURRENT is refused, and nothing else is tried (each try could count towards a lockout of
    an account the secret has not proved it controls). The error names the fix."""
    world.start_rotation(TOKENS[1])
    world.run("createSecret", TOKENS[1])
    world.run("finishSecret", TOKENS[1])  # AWSCURRENT now holds a password the db never got
    clear_pending_label(world.client.sm, world.arn, TOKENS[1])
    world.start_rotation(T)
    world.run("createSecret", T)
    before, refused = world.snapshot(), world.db.refused
    with pytest.raises(AuthenticationError, match="AWSCURRENT password of user 'app'") as info:
        world.run("setSecret", T)
    assert world.db.refused - refused == 1
    assert "working password in AWSCURRENT" in str(info.value)
    assert world.snapshot() == before


def test_set_secret_when_nothing_logs_in(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    key = next(iter(world.db.passwords))
    world.db.passwords[key] = "changed-by-hand-0000"
    before = world.snapshot()
    for attempt in range(1, 4):  # as Secrets Manager retries: one refused login each time
        with pytest.raises(AuthenticationError, match="does not prove control") as info:
            world.run("setSecret", T)
        assert world.db.refused == attempt
    assert info.value.step == "setSecret"
    assert world.snapshot() == before
    world.leaks.assert_exception_clean(info.value)


def test_a_rerun_after_the_change_finds_it_with_one_login(world: World) -> None:
    """The connection dropped right after the password changed: the version's label tells the
    re-run to try AWSPENDING (it logs in); AWSCURRENT, no longer valid, is not tried."""
    world.start_rotation(T)
    world.run("createSecret", T)
    world.db.fail_after_change = 1
    with pytest.raises(NetworkError):
        world.run("setSecret", T)
    assert PASSWORD_SET in world.versions()[T]
    attempts = len(world.db.attempts)
    world.run("setSecret", T)
    assert world.db.refused == 0
    assert len(world.db.attempts) == attempts + 1
    assert world.db.changes == 1
    world.run("testSecret", T)
    world.run("finishSecret", T)
    assert PASSWORD_SET not in world.versions()[T]  # the label is gone with the rotation


def test_a_forged_label_costs_one_login_and_is_removed(world: World) -> None:
    """Whoever may write the secret may put the label on; the re-run then tries AWSPENDING once,
    takes the label off, and the next attempt changes the password from AWSCURRENT."""
    world.start_rotation(T)
    world.run("createSecret", T)
    world.client.update_secret_version_stage(
        SecretId=world.arn, VersionStage=PASSWORD_SET, MoveToVersionId=T
    )
    with pytest.raises(AuthenticationError, match="stopped before changing it"):
        world.run("setSecret", T)
    assert (world.db.refused, world.db.changes) == (1, 0)
    assert PASSWORD_SET not in world.versions()[T]
    world.run("setSecret", T)
    assert (world.db.refused, world.db.changes) == (1, 1)


def test_a_login_the_server_never_checked_proves_nothing(world: World) -> None:
    """With pg_hba.conf's trust, any password "logs in": the rotation refuses rather than report
    a password set that protects nothing."""
    world.db.trust = True
    world.start_rotation(T)
    world.run("createSecret", T)
    before = world.snapshot()
    with pytest.raises(AuthenticationError, match="checked no password") as info:
        world.run("setSecret", T)
    assert "proves nothing" in str(info.value)
    assert world.snapshot() == before
    assert world.db.changes == 0


def test_a_stale_label_is_cleared_by_the_next_rotation(world: World) -> None:
    world.start_rotation(TOKENS[1])
    world.run("createSecret", TOKENS[1])
    world.run("setSecret", TOKENS[1])
    world.run("testSecret", TOKENS[1])
    world.client.update_secret_version_stage(  # finishSecret, stopped before the label came off
        SecretId=world.arn, VersionStage="AWSCURRENT", MoveToVersionId=TOKENS[1],
        RemoveFromVersionId=next(v for v, s in world.versions().items() if "AWSCURRENT" in s),
    )  # fmt: skip
    assert PASSWORD_SET in world.versions()[TOKENS[1]]
    clear_pending_label(world.client.sm, world.arn, TOKENS[1])
    world.start_rotation(T)
    world.run("createSecret", T)
    assert not any(PASSWORD_SET in stages for stages in world.versions().values())


@pytest.mark.parametrize(
    ("key", "value"),
    [("host", "evil.example.com"), ("port", 6543), ("username", "root"), ("sslmode", "require")],
)
def test_the_previous_password_is_never_sent_to_another_account(
    world: World, key: str, value: object
) -> None:
    """Whoever may write AWSCURRENT (PutSecretValue, which moves the real password to
    AWSPREVIOUS) must not harvest that password by pointing AWSCURRENT at their own server."""
    real_password = APP_SECRET["password"]
    world.client.put_secret_value(
        SecretId=world.arn,
        SecretString=json.dumps({**APP_SECRET, key: value, "password": "attacker-Password-1"}),
    )
    world.leaks.add("attacker-Password-1")
    world.start_rotation(T)
    world.run("createSecret", T)
    with pytest.raises((AuthenticationError, ConfigurationError)):
        world.run("setSecret", T)
    assert world.db.attempts, "setSecret tried no login at all"
    assert all(password != real_password for _, password in world.db.attempts)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("host", "other.host"),
        ("username", "root"),
        ("port", 5433),
        ("engine", "mysql"),
        ("sslmode", "verify-ca"),
    ],
)
def test_set_secret_refuses_a_pending_for_another_target(
    world: World, key: str, value: object
) -> None:
    world.start_rotation(T)
    world.client.put_secret_value(
        SecretId=world.arn,
        ClientRequestToken=T,
        SecretString=json.dumps({**APP_SECRET, key: value, "password": "pending-Password-0002"}),
        VersionStages=["AWSPENDING"],
    )
    world.leaks.add("pending-Password-0002")
    before = world.snapshot()
    logins = world.db.logins
    expected = ConfigurationError
    with pytest.raises(expected) as info:
        world.run("setSecret", T)
    assert world.snapshot() == before
    assert world.db.logins == logins  # the database was not even contacted
    world.leaks.assert_exception_clean(info.value)


def test_test_secret(world: World) -> None:
    world.start_rotation(T)
    world.run("createSecret", T)
    with pytest.raises(AuthenticationError, match="AWSPENDING credentials"):
        world.run("testSecret", T)
    world.run("setSecret", T)
    world.run("testSecret", T)
    world.run("testSecret", T)


def test_finish_secret_moves_current_once(world: World) -> None:
    old = next(v for v, s in world.versions().items() if "AWSCURRENT" in s)
    world.start_rotation(T)
    world.run("createSecret", T)
    world.run("setSecret", T)
    world.run("testSecret", T)
    world.run("finishSecret", T)
    versions = world.versions()
    assert "AWSCURRENT" in versions[T]
    assert versions[old] == ["AWSPREVIOUS"]
    # setSecret's label on, AWSCURRENT moved, the label off; a second finishSecret: nothing.
    assert world.client.count("update_secret_version_stage") == 3
    world.run("finishSecret", T)
    assert world.client.count("update_secret_version_stage") == 3
    assert world.versions() == versions


@pytest.mark.parametrize("step", ["createSecret", "setSecret", "testSecret", "finishSecret"])
def test_every_step_is_a_no_op_once_the_version_is_current(world: World, step: str) -> None:
    world.start_rotation(T)
    for s in ("createSecret", "setSecret", "testSecret", "finishSecret"):
        world.run(s, T)
    before = world.snapshot()
    calls = len(world.client.calls)
    world.run(step, T)
    # Only DescribeSecret: the guard returns before any other call.
    assert [name for name, _ in world.client.calls[calls:]] == ["describe_secret"]
    assert world.snapshot() == before


def test_steps_refuse_a_token_whose_version_has_no_pending_value(world: World) -> None:
    world.start_rotation(T)
    for step in ("setSecret", "testSecret"):
        with pytest.raises(StageError, match="has no AWSPENDING value"):
            world.run(step, T)
