"""``keyturn status``: the rotation health of every secret in the account and region."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from keyturn_core.protocol import unfinished_rotation

OK, STUCK, OVERDUE, OFF = "ok", "STUCK", "OVERDUE", "off"


@dataclass(frozen=True, slots=True)
class SecretStatus:
    name: str
    arn: str
    rotation_enabled: bool
    function: str | None
    last_rotated: datetime | None
    next_rotation: datetime | None
    state: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("last_rotated", "next_rotation"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def assess(entry: dict[str, Any], now: datetime) -> SecretStatus:
    """One ListSecrets entry's health (pure: unit-tested)."""
    versions: dict[str, list[str]] = entry.get("SecretVersionsToStages") or {}
    pending = unfinished_rotation(versions)
    enabled = bool(entry.get("RotationEnabled"))
    last = _utc(entry.get("LastRotatedDate"))
    next_at = _utc(entry.get("NextRotationDate"))
    days = (entry.get("RotationRules") or {}).get("AutomaticallyAfterDays")
    if next_at is None and enabled and days:
        base = last or _utc(entry.get("CreatedDate"))
        next_at = base + timedelta(days=int(days)) if base else None
    if pending is not None:
        state = STUCK
        detail = (
            f"AWSPENDING is on version {pending}, not AWSCURRENT: the last rotation did not finish"
        )
    elif enabled and next_at is not None and next_at < now:
        state = OVERDUE
        detail = f"the next rotation was due {next_at:%Y-%m-%d %H:%M} UTC"
    elif enabled:
        state, detail = OK, ""
    else:
        state, detail = OFF, "rotation is not enabled"
    function = entry.get("RotationLambdaARN") or None
    return SecretStatus(
        name=str(entry.get("Name", "")),
        arn=str(entry.get("ARN", "")),
        rotation_enabled=enabled,
        function=function.rsplit(":", 1)[-1] if function else None,
        last_rotated=last,
        next_rotation=next_at,
        state=state,
        detail=detail,
    )


def collect(client: Any, now: datetime | None = None) -> list[SecretStatus]:
    """Every secret, following ListSecrets' pages."""
    now = now or datetime.now(UTC)
    out = []
    for page in client.get_paginator("list_secrets").paginate():
        out += [assess(entry, now) for entry in page.get("SecretList", [])]
    return sorted(out, key=lambda s: s.name)


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    when = value if isinstance(value, datetime) else datetime.fromtimestamp(float(value), UTC)
    return when if when.tzinfo else when.replace(tzinfo=UTC)
