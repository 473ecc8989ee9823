"""The rotation event Secrets Manager sends to a rotation function, validated."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import EventError

# A version id is a client request token: 32 to 64 characters (Secrets Manager's own limits).
_TOKEN_MIN, _TOKEN_MAX = 32, 64
_SECRET_ID_MAX = 2048


class Step(enum.StrEnum):
    """The four steps of the rotation protocol, in the order the service runs them."""

    CREATE = "createSecret"
    SET = "setSecret"
    TEST = "testSecret"
    FINISH = "finishSecret"


@dataclass(frozen=True, slots=True)
class RotationEvent:
    """A validated rotation event.

    >>> event = {"Step": "createSecret", "SecretId": "arn:x", "ClientRequestToken": "t" * 32}
    >>> RotationEvent.parse(event).step
    <Step.CREATE: 'createSecret'>
    """

    step: Step
    secret_id: str
    token: str
    rotation_token: str | None = None

    @classmethod
    def parse(cls, event: object) -> RotationEvent:
        """Validate a raw event; raise :class:`EventError` naming the first field at fault."""
        if not isinstance(event, Mapping):
            raise EventError(f"the event must be a JSON object, not {type(event).__name__}")
        step_value = _required_str(event, "Step", max_len=32)
        try:
            step = Step(step_value)
        except ValueError:
            allowed = ", ".join(s.value for s in Step)
            raise EventError(f"event field 'Step' must be one of {allowed}") from None
        secret_id = _required_str(event, "SecretId", max_len=_SECRET_ID_MAX)
        token = _required_str(event, "ClientRequestToken", max_len=_TOKEN_MAX)
        if len(token) < _TOKEN_MIN:
            raise EventError(
                f"event field 'ClientRequestToken' must be {_TOKEN_MIN} to {_TOKEN_MAX} characters"
            )
        rotation_token = event.get("RotationToken")
        if rotation_token is not None and (
            not isinstance(rotation_token, str) or not rotation_token
        ):
            raise EventError("event field 'RotationToken' must be a non-empty string when present")
        return cls(step=step, secret_id=secret_id, token=token, rotation_token=rotation_token)

    def as_dict(self) -> dict[str, str]:
        """The event in the service's wire shape."""
        out = {
            "Step": self.step.value,
            "SecretId": self.secret_id,
            "ClientRequestToken": self.token,
        }
        if self.rotation_token is not None:
            out["RotationToken"] = self.rotation_token
        return out


def _required_str(event: Mapping[str, Any], key: str, *, max_len: int) -> str:
    value = event.get(key)
    if value is None:
        raise EventError(f"event field '{key}' is missing")
    if not isinstance(value, str) or not value.strip():
        raise EventError(f"event field '{key}' must be a non-empty string")
    if len(value) > max_len:
        raise EventError(f"event field '{key}' is longer than {max_len} characters")
    return value
