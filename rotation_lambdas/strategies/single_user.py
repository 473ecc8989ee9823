"""Single user: the user changes its own password.

Simple and needs no superuser, but between setSecret and finishSecret the database already has the
new password while AWSCURRENT still holds the old one; clients must fall back to AWSPENDING in that
window (``client_lib`` does).
"""

from __future__ import annotations

from ..errors import AuthenticationError
from ..secret import DatabaseSecret
from ..stages import AWSCURRENT, AWSPREVIOUS
from .base import StepContext, Strategy, StrategyName


class SingleUserStrategy[ConnT](Strategy[ConnT]):
    """Rotate a user's password by logging in as that user."""

    name = StrategyName.SINGLE_USER

    def pending_secret(self, current: DatabaseSecret, new_password: str) -> DatabaseSecret:
        return current.with_credentials(password=new_password)

    def set_secret(
        self, ctx: StepContext, current: DatabaseSecret, pending: DatabaseSecret
    ) -> None:
        conn = self.adapter.try_connect(pending)
        if conn is not None:
            # A re-run after the password was already changed: nothing to do.
            self.adapter.close(conn)
            ctx.logger.info("the pending password already logs in; nothing to set")
            return
        for label, login in self._logins(ctx, current):
            conn = self.adapter.try_connect(login)
            if conn is None:
                ctx.logger.info("login refused; trying the next version", extra={"version": label})
                continue
            try:
                self.adapter.change_own_password(conn, login, pending.password)
            finally:
                self.adapter.close(conn)
            ctx.logger.info("password changed", extra={"logged_in_with": label})
            return
        raise AuthenticationError(
            f"neither the AWSPENDING, AWSCURRENT nor AWSPREVIOUS password of user "
            f"'{current.username}' logs in to {current.endpoint}",
            hint="the password was changed outside Secrets Manager; put the working password "
            "in AWSCURRENT and rotate again",
        )

    def _logins(
        self, ctx: StepContext, current: DatabaseSecret
    ) -> list[tuple[str, DatabaseSecret]]:
        logins = [(AWSCURRENT, current)]
        previous = ctx.load_stage(AWSPREVIOUS)
        if previous is not None and previous.same_account(current):
            # Whoever may write AWSCURRENT may point it at another server; a password is only
            # ever sent where it came from, so AWSPREVIOUS is tried only for the same account.
            logins.append((AWSPREVIOUS, current.with_credentials(password=previous.password)))
        elif previous is not None:
            ctx.logger.info(
                "AWSPREVIOUS names another server, user or TLS mode than AWSCURRENT; not tried"
            )
        return logins
