"""Single-user rotation against real PostgreSQL 15 and MariaDB 10.11."""

from __future__ import annotations

import pytest

from keyturn_local.driver import clear_pending_label
from rotation_lambdas import ConfigurationError, DatabaseSecret
from tests.support.leaks import LeakWatch

from .conftest import DbWorld

STEPS = ["createSecret", "setSecret", "testSecret", "finishSecret"]
TOKEN = "11111111-2222-3333-4444-555555555555"

pytestmark = pytest.mark.integration


def test_full_rotation(db: DbWorld) -> None:
    old = db.secret("AWSCURRENT")
    assert db.logs_in(old)
    report = db.rotate()
    assert report.attempts == 1
    new = db.secret("AWSCURRENT")
    assert new.password != old.password
    assert not db.logs_in(old), "the old password still logs in"
    assert db.logs_in(new)
    assert db.secret("AWSPREVIOUS").password == old.password
    assert report.after[report.token] == ["AWSCURRENT"]


def test_ten_rotations_in_a_row(db: DbWorld) -> None:
    seen = [db.secret("AWSCURRENT").password]
    for _ in range(10):
        db.rotate()
        current = db.secret("AWSCURRENT")
        assert db.logs_in(current)
        assert not db.logs_in(db.secret("AWSPREVIOUS"))
        seen.append(current.password)
    assert len(set(seen)) == 11


def test_every_step_twice_is_a_no_op_the_second_time(db: DbWorld) -> None:
    db.start_rotation(TOKEN)
    for step in STEPS:
        db.run(step, TOKEN)
        versions = db.versions()
        values = {
            v: db.client.get_secret_value(SecretId=db.arn, VersionId=v)["SecretString"]
            for v in versions
        }
        pending = db.secret("AWSPENDING", TOKEN)
        calls = len(db.client.calls)
        db.run(step, TOKEN)
        writes = [
            name
            for name, _ in db.client.calls[calls:]
            if name in ("put_secret_value", "update_secret_version_stage")
        ]
        assert writes == [], f"{step} wrote again: {writes}"
        assert db.versions() == versions
        assert {
            v: db.client.get_secret_value(SecretId=db.arn, VersionId=v)["SecretString"]
            for v in versions
        } == values
        if step != "createSecret":
            assert db.logs_in(pending)
    db.watch_all_versions()


@pytest.mark.parametrize("completed", [1, 2, 3, 4])
def test_interrupted_rotation_is_redriven_to_completion(db: DbWorld, completed: int) -> None:
    old = db.secret("AWSCURRENT")
    db.start_rotation(TOKEN)
    for step in STEPS[:completed]:
        db.run(step, TOKEN)
    if completed == 4:
        clear_pending_label(db.client.sm, db.arn, TOKEN)
        assert db.logs_in(db.secret("AWSCURRENT"))
        return
    report = db.rotate(resume=True)
    assert report.token == TOKEN
    assert report.attempts == 1
    new = db.secret("AWSCURRENT")
    assert db.logs_in(new)
    assert not db.logs_in(old)
    db.rotate()  # and the next rotation starts


def test_pending_for_another_user_changes_nothing(db: DbWorld) -> None:
    db.start_rotation(TOKEN)
    db.run("createSecret", TOKEN)
    pending = db.secret("AWSPENDING", TOKEN)
    # A tampered pending version naming another user must not touch the database.
    tampered = pending.with_credentials(password=pending.password, username="postgres")
    db.client._client.put_secret_value(
        SecretId=db.arn,
        ClientRequestToken=TOKEN,
        SecretString=tampered.to_json(),
        VersionStages=["AWSPENDING"],
    )
    with pytest.raises(ConfigurationError, match="differ in 'username'"):
        db.run("setSecret", TOKEN)
    assert db.logs_in(db.secret("AWSCURRENT"))
    assert not db.logs_in(DatabaseSecret.from_mapping({**db.initial, "password": pending.password}))


def test_new_password_never_reaches_the_server_log(db: DbWorld) -> None:
    new_passwords = LeakWatch()
    for _ in range(2):
        db.rotate()
        new_passwords.add(db.secret("AWSCURRENT").password)
    assert len(new_passwords.values) == 2
    log = db.server.base / ("postgres.log" if db.engine_name == "postgres" else "general.log")
    text = log.read_text(errors="replace")
    # Statement logging is on: the test's own CREATE (with the initial password) is there.
    assert db.initial["password"] in text
    assert ("ALTER ROLE" if db.engine_name == "postgres" else "SET PASSWORD") in text
    new_passwords.assert_absent(text, where=f"the {db.engine_name} statement log")
