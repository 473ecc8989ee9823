"""Single user: the user changes its own password.

Simple and needs no superuser, but between setSecret and finishSecret the database already has the
new password while AWSCURRENT still holds the old one; clients must fall back to AWSPENDING in that
window (``client_lib`` does).

setSecret logs in with AWSCURRENT and changes the password only when that login proves control
of the account: the server asked for the password (no ``trust`` rule let it in) and matched the
account named. It makes at most one login that may fail per invocation: AWSCURRENT, or, when an
earlier run of this rotation labelled the version :data:`PASSWORD_SET` just before changing the
password, AWSPENDING (is it set already?). A secret naming someone else's account with a guessed
password so costs that account one failed login per invocation, never two.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import AuthenticationError, ConfigurationError
from ..secret import DatabaseSecret
from ..stages import AWSCURRENT, AWSPENDING, PASSWORD_SET
from .base import Login, StepContext, Strategy, StrategyName
from .proofs import LoggedProofs, Proofs

PROOF_STEPS = ("names", "account", "other hosts")


class SingleUserStrategy[ConnT](Strategy[ConnT]):
    """Rotate a user's password by logging in as that user."""

    name = StrategyName.SINGLE_USER
    proof_steps = PROOF_STEPS

    def pending_secret(self, current: DatabaseSecret, new_password: str) -> DatabaseSecret:
        return current.with_credentials(password=new_password)

    def set_secret(
        self, ctx: StepContext, current: DatabaseSecret, pending: DatabaseSecret
    ) -> None:
        if PASSWORD_SET in ctx.labels:
            self._confirm_set(ctx, pending)
            return
        with self.proven(current, LoggedProofs(ctx.logger)) as conn:
            ctx.set_label(PASSWORD_SET, True)  # before the change: a re-run checks AWSPENDING
            self.adapter.change_own_password(conn, current, pending.password)
        ctx.logger.info("password changed", extra={"logged_in_with": AWSCURRENT})

    def _confirm_set(self, ctx: StepContext, pending: DatabaseSecret) -> None:
        """A re-run after a run that was about to change the password: is it set?"""
        conn = self.adapter.try_connect(pending)
        if conn is None:
            # That run stopped before the change: the next attempt changes it from AWSCURRENT.
            ctx.set_label(PASSWORD_SET, False)
            raise AuthenticationError(
                f"the AWSPENDING password of user '{pending.username}' does not log in to "
                f"{pending.endpoint}: an earlier run of this rotation stopped before changing "
                "it; nothing was changed",
                hint="Secrets Manager retries the step, which then changes it from AWSCURRENT",
            )
        try:
            self._require_proof(conn, Login(AWSPENDING, pending))
        finally:
            self.adapter.close(conn)
        ctx.logger.info("the pending password already logs in; nothing to set")

    @contextmanager
    def proven(self, current: DatabaseSecret, proofs: Proofs) -> Iterator[ConnT]:
        """A session of AWSCURRENT that proves control of its account (each proof a step of
        ``proofs``; ``keyturn preflight`` runs the same)."""
        with proofs.step("names") as note:
            self.adapter.check_username(current.username)
            note.passed(
                f"'{current.username}' fits the {self.adapter.family.value} limit of "
                f"{self.adapter.max_username} {self.adapter.username_unit}"
            )
        with proofs.step("account") as note:
            conn = self.adapter.try_connect(current)
            if conn is None:
                raise AuthenticationError(
                    f"the AWSCURRENT password of user '{current.username}' does not log in to "
                    f"{current.endpoint}: the secret does not prove control of the account; "
                    "nothing was changed",
                    hint="the password was changed outside Secrets Manager, or the secret names "
                    "another account: put the account's working password in AWSCURRENT and "
                    "rotate again",
                )
            try:
                self._require_proof(conn, Login(AWSCURRENT, current))
            except BaseException:
                self.adapter.close(conn)
                raise
            note.passed(
                f"'{current.username}' logs in with the AWSCURRENT password, which the server "
                "checked"
            )
        try:
            with proofs.step("other hosts") as note:
                others = self.adapter.other_accounts(conn, current)
                if others:
                    hosts = ", ".join(repr(h) for h in others)
                    raise ConfigurationError(
                        f"'{current.username}' also has accounts on hosts {hosts}: a user changes "
                        "only the account its session matched, so the old password would still "
                        "open those; nothing was changed",
                        hint="drop the other accounts, or rotate the user with alternating users "
                        "(which sets every host)",
                    )
                if others is None:
                    note.warn(
                        f"'{current.username}' may not read the account list, so other "
                        f"'{current.username}'@host accounts, which the rotation would not "
                        "change, cannot be ruled out",
                        "make sure the user exists on one host only",
                    )
                note.passed(f"'{current.username}' has no other accounts the change would miss")
            yield conn
        finally:
            self.adapter.close(conn)

    def _require_proof(self, conn: ConnT, login: Login) -> None:
        problem = self.adapter.login_proof_problem(conn, login.secret)
        if problem is not None:
            raise AuthenticationError(
                f"{problem}: the {login.label} login proves nothing; nothing was changed",
                hint="require a password for the account in the server's authentication rules "
                "(no trust, anonymous or proxied logins)",
            )
