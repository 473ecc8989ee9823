"""The suite-wide leak guard itself: it must catch what it claims to catch."""

from __future__ import annotations

import json
import logging

import pytest

from rotation_lambdas import ConfigurationError
from tests.support.leaks import LeakWatch, Registry

PASSWORD = "Gen3rated-by-the-service"


def registry_that_saw_a_password() -> Registry:
    registry = Registry(LeakWatch())
    registry.saw_call("GetRandomPassword", {}, {"RandomPassword": PASSWORD})
    registry.saw_call(
        "PutSecretValue", {"SecretString": json.dumps({"password": "Put-by-a-test-1"})}, None
    )
    registry.saw_call(
        "GetSecretValue", {}, {"SecretString": json.dumps({"password": "Read-back-value-2"})}
    )
    return registry


def test_passwords_seen_by_boto3_are_watched() -> None:
    watched = registry_that_saw_a_password().watch.values
    assert watched == {PASSWORD, "Put-by-a-test-1", "Read-back-value-2"}


def test_a_password_in_a_log_record_is_caught() -> None:
    registry = registry_that_saw_a_password()
    clean = logging.makeLogRecord({"msg": "step failed", "error": "no value here"})
    registry.check_records([clean])
    leaky = logging.makeLogRecord({"msg": "step failed", "error": f"bad {PASSWORD}"})
    with pytest.raises(AssertionError, match="log record"):
        registry.check_records([leaky])


def test_a_password_in_a_chained_exception_is_caught() -> None:
    registry = registry_that_saw_a_password()
    try:
        try:
            raise ValueError(f"driver said {PASSWORD}")
        except ValueError as inner:
            raise ConfigurationError("wrapped") from inner
    except ConfigurationError as outer:
        registry.exceptions.append(outer)
    with pytest.raises(AssertionError, match="ValueError message"):
        registry.check_exceptions()
