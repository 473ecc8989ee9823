from __future__ import annotations

import pytest

from rotation_lambdas import SecretMetadata, StageError
from rotation_lambdas.stages import Decision, check_token

VERSIONS = {"cur": ["AWSCURRENT"], "pend": ["AWSPENDING"], "prev": ["AWSPREVIOUS"], "bare": []}


def test_pending_token_proceeds() -> None:
    assert check_token(SecretMetadata("arn", True, VERSIONS), "pend") is Decision.PROCEED


def test_current_token_is_done() -> None:
    assert check_token(SecretMetadata("arn", True, VERSIONS), "cur") is Decision.ALREADY_CURRENT
    both = {"v": ["AWSCURRENT", "AWSPENDING"]}
    assert check_token(SecretMetadata("arn", True, both), "v") is Decision.ALREADY_CURRENT


@pytest.mark.parametrize(
    ("enabled", "token", "message"),
    [
        (False, "pend", "rotation is not enabled"),
        (True, "nope", "not a version of the secret"),
        (True, "prev", "not at AWSPENDING"),
        (True, "bare", "not at AWSPENDING"),
    ],
)
def test_guard_refusals(enabled: bool, token: str, message: str) -> None:
    with pytest.raises(StageError, match=message):
        check_token(SecretMetadata("arn", enabled, VERSIONS), token)


def test_metadata_from_describe() -> None:
    meta = SecretMetadata.from_describe(
        {"ARN": "arn:1", "RotationEnabled": True, "VersionIdsToStages": VERSIONS}
    )
    assert meta.version_with("AWSCURRENT") == "cur"
    assert meta.version_with("AWSPENDING") == "pend"
    assert SecretMetadata.from_describe({}).version_with("AWSCURRENT") is None
