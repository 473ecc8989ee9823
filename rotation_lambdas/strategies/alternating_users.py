"""Alternating users: a superuser rotates ``<base>`` and ``<base>_clone`` in turn.

Each rotation gives the *other* user a new password, so the user in AWSCURRENT keeps working while
the previous one changes: no moment where the current credentials fail. The base user is the
canonical holder of privileges and the clone mirrors it on every rotation; testSecret compares the
two and fails the rotation, naming what differs, before finishSecret can promote a clone that
would not work like the base.

The superuser secret is named by the secret's ``masterarn`` key, or by the function's default
(``KEYTURN_SUPERUSER_SECRET_ARN``). It is only read, never changed, never logged.

The superuser can change any account, so whoever may write a rotated secret must not be able to
point it at an account they do not control (a confused deputy). The rule: **the function changes
an account only when the secret has proved control of that very account, on that very server,
with a password the server checked; or when the account is the clone the function itself created
and bound to this secret.** Before the superuser changes anything, setSecret proves, in order
(:meth:`AlternatingUsersStrategy.proven`, also run by ``keyturn preflight``):

1. **names**: both users' names fit the engine's limit, so no name is cut to another account's;
2. **account**: AWSCURRENT's credentials log in at the secret's host as that account itself, and
   the server asked for the password (a login that a ``trust`` rule let in proves nothing). This is
   the only login that may fail with credentials the secret wrote: one per invocation;
3. **same server**: that session takes a lock with a random name, and the superuser's session
   must see it held, on its own server, by the account itself. The secret's host is the writer's
   to choose and may answer anything; the superuser's server is not, and it names the lock's
   holder. So a secret for another server, or a relay of the lock by another account, fails;
4. **clone**: nothing more than the base (the adapters' ``refusals``);
5. **other user**: the account that changes is the pair's other one, so it needs its own proof:
   a clone that does not exist yet (created now, for this secret); a clone bound to this secret
   (PostgreSQL: its comment, which only an administrator of the role may write, names this
   secret); or a version of this secret (AWSPREVIOUS, or AWSPENDING after a crash) that holds its
   password, read from the server's hash where the engine allows (MySQL's native hashes: no
   login at all), else by one login within a pair an administrator made. A look-alike
   ``X_clone`` proves nothing about ``X``;
6. **administration**: the superuser may do all of it (PostgreSQL 16's ADMIN OPTION, settings
   only a superuser may copy), found before anything is created.

testSecret repeats the proof from the pending user's session before comparing the two users.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from keyturn_core.errors import SecretFormatError as CoreSecretFormatError
from keyturn_core.protocol import alternate, user_pair

from ..adapters.base import DatabaseAdapter, PairChange, PairState, UserAdministration
from ..errors import AuthenticationError, ConfigurationError, PrivilegeError, RotationError
from ..secret import DatabaseSecret
from ..stages import AWSCURRENT, AWSPENDING, AWSPREVIOUS, PASSWORD_SET
from .base import Login, StepContext, Strategy, StrategyName
from .proofs import LoggedProofs, Proofs
from .sessions import SuperuserSessions

SUPERUSER_KEY = "masterarn"
BINDING_PREFIX = "keyturn:"
PROOF_STEPS = (
    "names",
    "superuser secret",
    "account",
    "superuser login",
    "same server",
    "clone",
    "other user",
    "administration",
)


class ParityError(PrivilegeError):
    """The base user and its clone do not hold the same privileges."""


def binding_note(secret_arn: str, base: str) -> str:
    """The comment that binds a PostgreSQL clone to the secret it is rotated for.

    >>> binding_note("arn:aws:secretsmanager:us-east-1:1:secret:a", "app")
    'keyturn:{"clone_of":"app","secret":"arn:aws:secretsmanager:us-east-1:1:secret:a"}'
    """
    return BINDING_PREFIX + json.dumps(
        {"clone_of": base, "secret": secret_arn}, separators=(",", ":")
    )


class Authority(enum.StrEnum):
    """Why the function may change the pair's other user."""

    CREATED = "created"  # the clone does not exist: this rotation creates it for the secret
    BOUND = "bound"  # the clone is bound to this secret (its note), so it is the function's
    PROVEN = "proven"  # a version of this secret holds the user's password


@dataclass(frozen=True, slots=True)
class Proven[ConnT]:
    """Every proof held: who proved what, and the open sessions to act with."""

    base: str
    clone: str
    login: Login
    superuser: DatabaseSecret
    conn: ConnT  # the superuser's session
    other: str  # the user that changes
    authority: Authority
    by: str  # what the authority rests on, for the log
    verified_offline: bool  # the other user's password was read from its hash, not a login


class AlternatingUsersStrategy[ConnT](Strategy[ConnT]):
    """Rotate the other user of a base/clone pair, logged in as a superuser."""

    name = StrategyName.ALTERNATING_USERS
    proof_steps = PROOF_STEPS

    def __init__(
        self, adapter: DatabaseAdapter[ConnT], default_superuser_arn: str | None = None
    ) -> None:
        super().__init__(adapter)
        if not isinstance(adapter, UserAdministration):
            raise ConfigurationError(f"the {adapter.family.value} adapter cannot administer users")
        self.admin: UserAdministration[ConnT] = adapter
        self.default_superuser_arn = default_superuser_arn or None
        self.sessions = SuperuserSessions(adapter)

    def pair(self, username: str) -> tuple[str, str]:
        """The pair of ``username``, both names within the engine's limit."""
        try:
            base, clone = user_pair(username)
        except CoreSecretFormatError as exc:
            raise ConfigurationError(str(exc)) from None
        self.adapter.check_username(base, "the base username")
        self.adapter.check_username(clone, "the clone's username")
        return base, clone

    def pending_secret(self, current: DatabaseSecret, new_password: str) -> DatabaseSecret:
        self.pair(current.username)
        return current.with_credentials(password=new_password, username=alternate(current.username))

    def check_pair(self, current: DatabaseSecret, pending: DatabaseSecret) -> None:
        self.pair(current.username)
        super().check_pair(
            current, pending.with_credentials(password=pending.password, username=current.username)
        )
        if pending.username != alternate(current.username):
            raise ConfigurationError(
                "the AWSPENDING username is not the alternate of the AWSCURRENT username "
                f"(expected '{alternate(current.username)}')",
                hint="cancel this rotation (remove AWSPENDING) and rotate again",
            )
        if pending.raw.get(SUPERUSER_KEY) != current.raw.get(SUPERUSER_KEY):
            raise ConfigurationError(
                f"the AWSPENDING and AWSCURRENT versions name another '{SUPERUSER_KEY}'; "
                "refusing to touch the database",
                hint="cancel this rotation (remove AWSPENDING) and fix the secret",
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

    # --- the steps ------------------------------------------------------------------------------

    def set_secret(
        self, ctx: StepContext, current: DatabaseSecret, pending: DatabaseSecret
    ) -> None:
        with self.proven(ctx, current, pending, LoggedProofs(ctx.logger)) as proven:
            if not self.admin.binds_clones and not proven.verified_offline:
                # After a crash, a re-run can tell that this token's password was set only by
                # one login: the label says which version to try first.
                ctx.set_label(PASSWORD_SET, True)
            self.admin.apply(
                proven.conn,
                PairChange(
                    base=proven.base,
                    clone=proven.clone,
                    rotating=pending.username,
                    password=pending.password,
                    clone_password=(
                        pending.password if pending.username == proven.clone else current.password
                    ),
                    binding=binding_note(ctx.secret_arn, proven.base),
                ),
            )
        ctx.logger.info(
            "password set by the superuser; the clone mirrors the base",
            extra={
                "username": pending.username,
                "base": proven.base,
                "proven_with": proven.login.label,
                "other_user": proven.authority.value,
                "other_user_proven_by": proven.by,
            },
        )

    def test_secret(self, ctx: StepContext, pending: DatabaseSecret) -> None:
        base, clone = self.pair(pending.username)
        # AWSPENDING names the same superuser secret as AWSCURRENT (check_pair, at setSecret).
        superuser = self.superuser(ctx, pending)
        with ExitStack() as sessions:
            superuser_login = sessions.enter_context(self.sessions.login(superuser))
            conn = self.open_pending(pending)
            sessions.callback(self.adapter.close, conn)
            problem = self.adapter.login_proof_problem(conn, pending, superuser_checks=True)
            if problem is not None:
                raise AuthenticationError(
                    f"the AWSPENDING login does not prove the password works: {problem}",
                    hint="require a password for the account in the server's authentication rules",
                )
            marker = self.admin.claim_marker(conn)  # a query: the session works (the probe)
            su_conn = superuser_login.result()
            self.prove_on_superuser_server(
                su_conn, marker, Login(AWSPENDING, pending), superuser, changed=True
            )
            unchecked = self.admin.unchecked_login(su_conn, pending.username)
            if unchecked is not None:
                raise AuthenticationError(f"the AWSPENDING login proves nothing: {unchecked}")
            differences = self.admin.parity_differences(su_conn, base, clone)
        if differences:
            raise ParityError(
                f"'{base}' and '{clone}' do not hold the same privileges: "
                + "; ".join(differences),
                hint="re-run the rotation: setSecret repairs the clone from the base",
            )

    # --- the proofs -----------------------------------------------------------------------------

    @contextmanager
    def proven(
        self,
        ctx: StepContext,
        current: DatabaseSecret,
        pending: DatabaseSecret | None,
        proofs: Proofs,
    ) -> Iterator[Proven[ConnT]]:
        """Run every proof of the module's docstring, in order, each as a step of ``proofs``;
        yield with the superuser's session open. ``pending`` is None for ``keyturn preflight``
        (no rotation in progress)."""
        with proofs.step("names") as note:
            base, clone = self.pair(current.username)
            note.passed(
                f"'{base}' and '{clone}' fit the {self.adapter.family.value} limit of "
                f"{self.adapter.max_username} {self.adapter.username_unit}"
            )
        with proofs.step("superuser secret") as note:
            superuser = self.superuser(ctx, current)
            note.passed(f"user '{superuser.username}' at {superuser.endpoint}")
            if "host" not in superuser.raw:
                note.warn(
                    f"user '{superuser.username}' at {superuser.endpoint}, located through RDS "
                    "(a master secret RDS manages)",
                    "the function finds it only when deployed with RdsManagedSuperusers=true",
                )
        login = Login(AWSCURRENT, current)
        with ExitStack() as sessions:
            # The superuser logs in meanwhile (a login is mostly waiting on the network); it acts
            # only after every proof below.
            superuser_login = sessions.enter_context(self.sessions.login(superuser))
            with proofs.step("account") as note:
                account = self.open_proof_session(login)
                sessions.callback(self.adapter.close, account)
                marker = self.admin.claim_marker(account)
                note.passed(
                    f"the AWSCURRENT password logs in as '{current.username}' itself, and the "
                    "server checked it"
                )
            with proofs.step("superuser login") as note:
                conn = superuser_login.result()
                note.passed(f"'{superuser.username}' logs in to {superuser.endpoint}")
            with proofs.step("same server") as note:
                self.prove_on_superuser_server(conn, marker, login, superuser)
                unchecked = self.admin.unchecked_login(conn, current.username)
                if unchecked is not None:
                    raise AuthenticationError(
                        f"{unchecked}: the secret does not prove control of the account; "
                        "nothing was changed",
                        hint="give the account a password (and only password logins)",
                    )
                note.passed(
                    f"{superuser.endpoint} and {current.endpoint} reach one server: the lock "
                    f"taken at {current.endpoint} is held there by '{current.username}' itself"
                )
            other = alternate(current.username)
            decided: list[tuple[Authority, str, bool] | RotationError] = []

            def authority() -> tuple[Authority, str, bool]:
                # Decided once, when first needed (a proof of the other user may log in).
                if not decided:
                    try:
                        decided.append(
                            self.authorize(ctx, conn, login, pending, base, clone, other)
                        )
                    except RotationError as exc:
                        decided.append(exc)
                outcome = decided[0]
                if isinstance(outcome, RotationError):
                    raise outcome
                return outcome

            def clone_is_ours() -> bool:
                if current.username == clone:
                    return True
                try:
                    return authority()[0] is not Authority.CREATED
                except RotationError:
                    return False

            with proofs.step("clone") as note:
                self.refuse_unsafe_pair(conn, base, clone, clone_is_ours)
                note.passed(f"'{clone}' holds nothing '{base}' lacks")
            with proofs.step("other user") as note:
                kind, by, offline = authority()
                note.passed(f"the rotation changes '{other}': {by}")
            with proofs.step("administration") as note:
                refusals = self.admin.administration_refusals(conn, base, clone)
                if refusals:
                    raise PrivilegeError(
                        f"the superuser '{superuser.username}' cannot rotate '{base}' and "
                        f"'{clone}': " + "; ".join(refusals) + "; nothing was changed",
                        hint="apply the fix named for each, then rotate again",
                    )
                note.passed(f"'{superuser.username}' may administer '{base}' and '{clone}'")
            yield Proven(
                base, clone, login, superuser, conn, other, kind, by, verified_offline=offline
            )

    def open_proof_session(self, login: Login) -> ConnT:
        """Log in with ``login``; raise unless the session proves control of its account."""
        conn = self.adapter.try_connect(login.secret)
        if conn is None:
            raise AuthenticationError(
                f"the {login.label} credentials of '{login.secret.username}' do not log in to "
                f"{login.secret.endpoint}: the secret does not prove control of the account, so "
                "the superuser changes nothing",
                hint="store the account's working password in AWSCURRENT and rotate again; a "
                "secret may only rotate an account whose password it holds",
            )
        try:
            problem = self.adapter.login_proof_problem(conn, login.secret, superuser_checks=True)
        except BaseException:
            self.adapter.close(conn)
            raise
        if problem is not None:
            self.adapter.close(conn)
            raise AuthenticationError(
                f"{problem}: the secret does not prove control of the account, so the superuser "
                "changes nothing",
                hint="require a password for the account in the server's authentication rules "
                "(no trust, anonymous or proxied logins)",
            )
        return conn

    def prove_on_superuser_server(
        self,
        conn: ConnT,
        marker: Any,
        login: Login,
        superuser: DatabaseSecret,
        *,
        changed: bool = False,
    ) -> None:
        """Raise unless, on the superuser's server, a session of the rotated account holds the
        lock the account's session took. ``changed``: setSecret already ran (testSecret)."""
        outcome = "" if changed else "; nothing was changed"
        holder = self.admin.lock_holder(conn, marker)
        if holder is None:
            raise ConfigurationError(
                f"the superuser secret's server ({superuser.endpoint}) is not the server of the "
                f"{login.label} credentials ({login.secret.endpoint}): a lock held by a session "
                f"on one is not seen from the other{outcome}",
                hint="point 'masterarn' at the superuser secret of this database, and both "
                "secrets at the same instance (the writer; a reader endpoint is another server)",
            )
        if holder != login.secret.username:
            raise AuthenticationError(
                f"on the superuser's server ({superuser.endpoint}) the lock taken by the "
                f"{login.label} session is held by '{holder}', not by "
                f"'{login.secret.username}': the secret's host relayed it, so the secret does "
                f"not prove control of the account{outcome}",
                hint="the secret's host must be the database itself; check who may write this "
                "secret",
            )

    def proves_control(self, conn: ConnT, login: Login) -> bool:
        """Whether ``login`` logs in at its host, as that account with a password the server
        checked, and the superuser's server names that session's account as its own."""
        account = self.adapter.try_connect(login.secret)
        if account is None:
            return False
        try:
            if self.adapter.login_proof_problem(account, login.secret, superuser_checks=True):
                return False
            marker = self.admin.claim_marker(account)
            return self.admin.lock_holder(conn, marker) == login.secret.username and (
                self.admin.unchecked_login(conn, login.secret.username) is None
            )
        finally:
            self.adapter.close(account)

    def authorize(
        self,
        ctx: StepContext,
        conn: ConnT,
        login: Login,
        pending: DatabaseSecret | None,
        base: str,
        clone: str,
        other: str,
    ) -> tuple[Authority, str, bool]:
        """Why ``other``, the user that changes, may be changed: its authority, a sentence, and
        whether its password was read from a hash. Raises, before any change, if nothing
        proves it."""
        state = self.admin.pair_state(conn, base, clone)
        if not state.clone_exists:
            if other != clone:  # the proven user is the clone, which exists
                raise ConfigurationError(f"'{clone}' vanished during the rotation; re-run")
            return (
                Authority.CREATED,
                "it does not exist yet, so it is created for this secret",
                True,
            )
        bound_to = _bound_secret(state, base)
        if bound_to is not None and bound_to != ctx.secret_arn:
            raise ConfigurationError(
                f"'{clone}' is the clone of '{base}' for another secret ({bound_to}): two "
                "secrets would rotate one pair of users, and each rotation would break the "
                "other's AWSCURRENT; nothing was changed",
                hint=f"give each secret a base user of its own; '{clone}' stays with the secret "
                "that created it",
            )
        if bound_to == ctx.secret_arn:
            # Only a role that administers the clone can write its note: this function did,
            # when it created the clone for this secret (a revoked membership is repaired).
            return Authority.BOUND, "it is this secret's clone (bound to it)", False
        candidates = self._versions_naming(ctx, login.secret, pending, other)
        verdicts = [
            (c, self.admin.password_matches(conn, other, c.secret.password)) for c in candidates
        ]
        for candidate, verdict in verdicts:
            if verdict:
                return (
                    Authority.PROVEN,
                    f"the server's hash is of its {candidate.label} password",
                    True,
                )
        unknown = [c for c, verdict in verdicts if verdict is None]
        # One login at most, and only within a pair an administrator made (the clone a member of
        # the base): a look-alike X_clone must not cost X a failed login, nor X an X_clone.
        if unknown and state.clone_in_base:
            marked = PASSWORD_SET in ctx.labels
            pick = next((c for c in unknown if c.label == AWSPENDING), None) if marked else None
            candidate = pick or unknown[0]
            if self.proves_control(conn, candidate):
                return Authority.PROVEN, f"its {candidate.label} password logs in as it", False
            if marked:
                ctx.set_label(PASSWORD_SET, False)  # the next attempt tries AWSPREVIOUS
        raise self._unproven(login, base, clone, other, state, candidates)

    def _versions_naming(
        self,
        ctx: StepContext,
        current: DatabaseSecret,
        pending: DatabaseSecret | None,
        user: str,
    ) -> list[Login]:
        """The versions of this secret for ``user`` on the current version's server."""
        out = []
        previous = ctx.load_stage(AWSPREVIOUS)
        for label, secret in ((AWSPREVIOUS, previous), (AWSPENDING, pending)):
            # Only where it came from: the same server, port and TLS mode as AWSCURRENT.
            if secret is not None and secret.same_account(
                current.with_credentials(password=secret.password, username=user)
            ):
                out.append(Login(label, secret))
        return out

    def _unproven(
        self,
        login: Login,
        base: str,
        clone: str,
        other: str,
        state: PairState,
        candidates: list[Login],
    ) -> AuthenticationError:
        held = (
            f"neither {' nor '.join(c.label for c in candidates)} holds the password of '{other}'"
            if candidates
            else f"no version of the secret names '{other}'"
        )
        if other == base:
            why = (
                f"'{clone}' (the {login.label} user) is not a clone this function created for "
                f"this secret (not bound to it"
                + ("" if state.clone_in_base else f", not a member of '{base}'")
                + f"), so its password proves nothing about '{base}'; and {held}"
            )
            hint = (
                f"a secret may only rotate accounts whose password it holds: put the working "
                f"password of '{base}' in AWSPREVIOUS, or rotate '{base}' from a secret of its own"
            )
        else:
            why = f"'{clone}' exists but is not this secret's clone (not bound to it), and {held}"
            hint = (
                f"if '{clone}' is an unused clone left by an earlier rotation, drop it (the next "
                f"rotation creates it afresh); if it is someone's account, use another base user"
            )
        return AuthenticationError(
            f"refusing to change '{other}': {why}; nothing was changed", hint=hint
        )

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


def _bound_secret(state: PairState, base: str) -> str | None:
    """The secret a clone's note binds it to (for this base), or None."""
    note = state.clone_note
    if note is None or not note.startswith(BINDING_PREFIX):
        return None
    try:
        data = json.loads(note[len(BINDING_PREFIX) :])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("clone_of") != base:
        return None
    secret = data.get("secret")
    return secret if isinstance(secret, str) else None
