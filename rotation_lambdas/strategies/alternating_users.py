"""Alternating users: a superuser rotates ``<base>`` and ``<base>_clone`` in turn.

Each rotation gives the *other* user a new password, so the user in AWSCURRENT keeps working while
the previous one changes: no moment where the current credentials fail. The base user is the
canonical holder of privileges and the clone mirrors it on every rotation; testSecret compares the
two and fails the rotation, naming what differs, before finishSecret can promote a clone that
would not work like the base.

The superuser secret is named by the secret's ``masterarn`` key, or by the function's default
(``KEYTURN_SUPERUSER_SECRET_ARN``). It is only read, never changed, never logged.
"""

from __future__ import annotations

from typing import Any

from ..adapters.base import DatabaseAdapter, UserAdministration
from ..errors import ConfigurationError, PrivilegeError
from ..secret import DatabaseSecret, EngineFamily
from .base import StepContext, Strategy

CLONE_SUFFIX = "_clone"
SUPERUSER_KEY = "masterarn"
# PostgreSQL: NAMEDATALEN - 1 bytes. MySQL: 32 characters (MariaDB allows 80; we hold to the
# family's smallest so a secret works on every member).
MAX_USERNAME_BYTES = {EngineFamily.POSTGRESQL: 63, EngineFamily.MYSQL: 32}


class ParityError(PrivilegeError):
    """The base user and its clone do not hold the same privileges."""


def user_pair(username: str) -> tuple[str, str]:
    """``(base, clone)`` for either user of the pair.

    >>> user_pair("app"), user_pair("app_clone")
    (('app', 'app_clone'), ('app', 'app_clone'))
    """
    base = username.removesuffix(CLONE_SUFFIX) if username.endswith(CLONE_SUFFIX) else username
    if not base:
        raise ConfigurationError("the username is only the clone suffix")
    return base, base + CLONE_SUFFIX


def alternate(username: str) -> str:
    """The other user of the pair."""
    base, clone = user_pair(username)
    return base if username == clone else clone


def check_username_length(family: EngineFamily, username: str) -> None:
    """Refuse a base name whose clone would not fit the engine's identifier limit."""
    _, clone = user_pair(username)
    limit = MAX_USERNAME_BYTES[family]
    size = len(clone.encode()) if family is EngineFamily.POSTGRESQL else len(clone)
    if size > limit:
        unit = "bytes" if family is EngineFamily.POSTGRESQL else "characters"
        raise ConfigurationError(
            f"the username is too long to alternate: '{clone}' would be longer than {limit} "
            f"{unit}, the {family.value} limit",
            hint=f"use a base username of at most {limit - len(CLONE_SUFFIX)} {unit}",
        )


class AlternatingUsersStrategy[ConnT](Strategy[ConnT]):
    """Rotate the other user of a base/clone pair, logged in as a superuser."""

    name = "alternating-users"

    def __init__(
        self, adapter: DatabaseAdapter[ConnT], default_superuser_arn: str | None = None
    ) -> None:
        super().__init__(adapter)
        if not isinstance(adapter, UserAdministration):
            raise ConfigurationError(f"the {adapter.family.value} adapter cannot administer users")
        self.admin: UserAdministration[ConnT] = adapter
        self.default_superuser_arn = default_superuser_arn or None

    def pending_secret(self, current: DatabaseSecret, new_password: str) -> DatabaseSecret:
        check_username_length(current.family, current.username)
        return current.with_credentials(password=new_password, username=alternate(current.username))

    def check_pair(self, current: DatabaseSecret, pending: DatabaseSecret) -> None:
        super().check_pair(
            current, pending.with_credentials(password=pending.password, username=current.username)
        )
        if pending.username != alternate(current.username):
            raise ConfigurationError(
                "the AWSPENDING username is not the alternate of the AWSCURRENT username "
                f"(expected '{alternate(current.username)}')",
                hint="cancel this rotation (remove AWSPENDING) and rotate again",
            )

    def superuser(self, ctx: StepContext, current: DatabaseSecret) -> DatabaseSecret:
        """The superuser secret named by ``masterarn`` or the function's default, validated."""
        arn: Any = current.raw.get(SUPERUSER_KEY, self.default_superuser_arn)
        if arn is None:
            raise ConfigurationError(
                f"the secret has no '{SUPERUSER_KEY}' key and the function has no default "
                "superuser secret",
                hint="add 'masterarn' (the superuser secret's ARN) to the secret, or set "
                "KEYTURN_SUPERUSER_SECRET_ARN on the function",
            )
        if not isinstance(arn, str) or not arn.startswith("arn:") or ":secret:" not in arn:
            raise ConfigurationError(f"secret key '{SUPERUSER_KEY}' must be a secret's ARN")
        if arn == ctx.secret_arn:
            raise ConfigurationError(f"secret key '{SUPERUSER_KEY}' names the secret being rotated")
        superuser = ctx.load_secret(arn, "superuser secret")
        if superuser.family is not current.family:
            raise ConfigurationError(
                f"the superuser secret is for engine '{superuser.engine}', not {current.family}"
            )
        if superuser.username in user_pair(current.username):
            raise ConfigurationError("the superuser secret names one of the rotated users")
        return superuser

    def set_secret(
        self, ctx: StepContext, current: DatabaseSecret, pending: DatabaseSecret
    ) -> None:
        base, clone = user_pair(current.username)
        superuser = self.superuser(ctx, current)
        with self.adapter.connect(superuser) as conn:
            if pending.username == clone:
                self.admin.mirror_clone(conn, base, clone, pending.password)
                self.admin.set_password(conn, clone, pending.password)
            else:
                self.admin.set_password(conn, base, pending.password)
                if self.admin.user_exists(conn, clone):
                    # The clone is in use (it is AWSCURRENT): keep it in step with the base.
                    self.admin.mirror_clone(conn, base, clone, current.password)
        ctx.logger.info(
            "password set by the superuser; the clone mirrors the base",
            extra={"username": pending.username, "base": base},
        )

    def test_secret(self, ctx: StepContext, pending: DatabaseSecret) -> None:
        super().test_secret(ctx, pending)
        current = ctx.load_stage("AWSCURRENT")
        if current is None:
            return
        base, clone = user_pair(pending.username)
        with self.adapter.connect(self.superuser(ctx, current)) as conn:
            differences = self.admin.parity_differences(conn, base, clone)
        if differences:
            raise ParityError(
                f"'{base}' and '{clone}' do not hold the same privileges: "
                + "; ".join(differences),
                hint="re-run the rotation: setSecret repairs the clone from the base",
            )
