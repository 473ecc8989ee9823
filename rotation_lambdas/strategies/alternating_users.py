"""Alternating users: a superuser rotates ``<base>`` and ``<base>_clone`` in turn.

Each rotation gives the *other* user a new password, so the user in AWSCURRENT keeps working while
the previous one changes: no moment where the current credentials fail. The base user is the
canonical holder of privileges and the clone mirrors it on every rotation; testSecret compares the
two and fails the rotation, naming what differs, before finishSecret can promote a clone that
would not work like the base.

The superuser secret is named by the secret's ``masterarn`` key, or by the function's default
(``KEYTURN_SUPERUSER_SECRET_ARN``). It is only read, never changed, never logged.

The superuser can change any account, so whoever may write a rotated secret must not be able to
point it at an account they do not control (a confused deputy). Before the superuser changes
anything, setSecret therefore proves, and refuses otherwise:

1. **control, on the superuser's own server**: the secret's credentials log in at the secret's
   host (AWSCURRENT; or AWSPENDING, when a crashed setSecret already set it), and that session
   takes a lock with a random name. The superuser's session must then see that lock held, on its
   own server, by a session of the rotated account itself. The secret's host is the writer's to
   choose and may answer anything; the superuser's server is not, and it names the lock's holder.
   So a secret for another server, or a relay of the lock by another account, fails;
2. **nothing more than the base**: the adapters' ``refusals`` (a clone that holds more than
   mirroring takes away; accounts of one user name a single password does not control).

testSecret repeats the proof from the pending user's session before comparing the two users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ..adapters.base import DatabaseAdapter, ServerMarker, UserAdministration
from ..errors import AuthenticationError, ConfigurationError, PrivilegeError
from ..secret import DatabaseSecret, EngineFamily
from ..stages import AWSCURRENT, AWSPENDING, AWSPREVIOUS
from .base import StepContext, Strategy, StrategyName

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

    name = StrategyName.ALTERNATING_USERS

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
        if "?" in arn or "*" in arn:
            # An IAM wildcard (SuperuserSecretArns allows name-?????? for the role's policy),
            # not a secret Secrets Manager can find.
            raise ConfigurationError(
                "the superuser secret ARN is an IAM wildcard, not a secret",
                hint="name the superuser secret by its complete ARN (in 'masterarn', or first in "
                "SuperuserSecretArns, which sets KEYTURN_SUPERUSER_SECRET_ARN)",
            )
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
        with self.controlled_session(current, pending) as (login, account_conn):
            marker = self.admin.claim_marker(account_conn)
            with self.adapter.connect(superuser) as conn:
                self.prove_on_superuser_server(conn, marker, login, superuser)

                def clone_is_ours() -> bool:
                    if login.secret.username == clone:
                        return True  # the proof just made was the clone's
                    previous = ctx.load_stage(AWSPREVIOUS)
                    return (
                        previous is not None
                        and previous.username == clone
                        and previous.same_account(
                            current.with_credentials(password=previous.password, username=clone)
                        )
                        and self.proves_control(conn, Login(AWSPREVIOUS, previous), superuser)
                    )

                self.refuse_unsafe_pair(conn, base, clone, clone_is_ours)
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
            extra={"username": pending.username, "base": base, "proven_with": login.label},
        )

    def test_secret(self, ctx: StepContext, pending: DatabaseSecret) -> None:
        current = ctx.load_stage(AWSCURRENT)
        conn = self.open_pending(pending)
        try:
            self.adapter.probe(conn)
            if current is None:
                return
            base, clone = user_pair(pending.username)
            superuser = self.superuser(ctx, current)
            marker = self.admin.claim_marker(conn)
            with self.adapter.connect(superuser) as su_conn:
                self.prove_on_superuser_server(
                    su_conn, marker, Login(AWSPENDING, pending), superuser
                )
                differences = self.admin.parity_differences(su_conn, base, clone)
        finally:
            self.adapter.close(conn)
        if differences:
            raise ParityError(
                f"'{base}' and '{clone}' do not hold the same privileges: "
                + "; ".join(differences),
                hint="re-run the rotation: setSecret repairs the clone from the base",
            )

    # --- the proofs -----------------------------------------------------------------------------

    @contextmanager
    def controlled_session(
        self, current: DatabaseSecret, pending: DatabaseSecret
    ) -> Iterator[tuple[Login, ConnT]]:
        """A session proving the secret's writer controls the account: logged in with the
        secret's own credentials, at its host, as the base user or its clone.

        AWSCURRENT first; AWSPENDING when AWSCURRENT is refused (a re-run after setSecret already
        set the pending password). Raises :class:`AuthenticationError` if neither logs in, and
        :class:`ConfigurationError` if the server matched another account.
        """
        for login in (Login(AWSCURRENT, current), Login(AWSPENDING, pending)):
            conn = self.adapter.try_connect(login.secret)
            if conn is None:
                continue
            try:
                if not self.admin.logged_in_as(conn, login.secret.username):
                    raise ConfigurationError(
                        f"the {login.label} credentials of '{login.secret.username}' at "
                        f"{login.secret.endpoint} log in as another account (anonymous or "
                        "proxied); refusing to act as the superuser",
                        hint="remove the anonymous accounts or the proxy grant that matched",
                    )
                yield login, conn
            finally:
                self.adapter.close(conn)
            return
        raise AuthenticationError(
            f"neither the AWSCURRENT nor the AWSPENDING credentials of '{current.username}' log "
            f"in to {current.endpoint}: the secret does not prove control of the account, so the "
            "superuser changes nothing",
            hint="store the account's working password in AWSCURRENT and rotate again; a secret "
            "may only rotate an account whose password it holds",
        )

    def prove_on_superuser_server(
        self, conn: ConnT, marker: ServerMarker, login: Login, superuser: DatabaseSecret
    ) -> None:
        """Raise unless, on the superuser's server, a session of the rotated account holds the
        lock the account's session took."""
        holder = self.admin.lock_holder(conn, marker)
        if holder is None:
            raise ConfigurationError(
                f"the superuser secret's server ({superuser.endpoint}) is not the server of the "
                f"{login.label} credentials ({login.secret.endpoint}): a lock held by a session "
                "on one is not seen from the other; nothing was changed",
                hint="point 'masterarn' at the superuser secret of this database, and both "
                "secrets at the same instance (the writer; a reader endpoint is another server)",
            )
        if holder != login.secret.username:
            raise AuthenticationError(
                f"on the superuser's server ({superuser.endpoint}) the lock taken by the "
                f"{login.label} session is held by '{holder}', not by "
                f"'{login.secret.username}': the secret's host relayed it, so the secret does "
                "not prove control of the account; nothing was changed",
                hint="the secret's host must be the database itself; check who may write this "
                "secret",
            )

    def proves_control(self, conn: ConnT, login: Login, superuser: DatabaseSecret) -> bool:
        """Whether ``login`` logs in at its host and the superuser's server names that session's
        account as its own (the proof of setSecret, as a yes or no)."""
        account_conn = self.adapter.try_connect(login.secret)
        if account_conn is None:
            return False
        try:
            marker = self.admin.claim_marker(account_conn)
            return self.admin.lock_holder(conn, marker) == login.secret.username
        finally:
            self.adapter.close(account_conn)

    def refuse_unsafe_pair(
        self,
        conn: ConnT,
        base: str,
        clone: str,
        clone_is_ours: Callable[[], bool] = lambda: False,
    ) -> None:
        """Raise, before any change, if rotating the pair could hand out more than the base."""
        refusals = self.admin.refusals(conn, base, clone, clone_is_ours)
        if refusals:
            raise PrivilegeError(
                f"rotating '{base}' and '{clone}' would hand out more than '{base}' holds: "
                + "; ".join(refusals)
                + "; nothing was changed",
                hint=f"remove those; if '{clone}' is not this secret's clone (never AWSCURRENT), "
                "drop it: the next rotation creates it afresh",
            )


@dataclass(frozen=True, slots=True)
class Login:
    """A secret version used to log in, and its stage for messages."""

    label: str
    secret: DatabaseSecret
