"""``keyturn preflight SECRET_ID``: will rotating this secret work? Each check says why not.

Checks, in order (a failed check skips the ones that depend on it): the secret can be read and
no rotation is stuck; its JSON suits the strategy; the engine and which function to use; the
database is reachable; TLS as configured; the current credentials log in. Then the proofs
setSecret makes before it changes anything, run by the strategy's own code (one sequence, so
preflight cannot drift from the function): for single user, that the login proves control of the
account and no other account of the user would keep the old password; for alternating users,
the same, on the superuser's server, and who may change the pair's other user. Last, the
privileges the strategy needs. Nothing is changed: PostgreSQL's statements run in a transaction
that is rolled back, the MySQL family's checks only read.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from keyturn_core.protocol import AWSCURRENT, function_name, unfinished_rotation, user_pair
from rotation_lambdas import DatabaseSecret, RotationError, SecretsStore
from rotation_lambdas.adapters import DatabaseAdapter
from rotation_lambdas.errors import AuthenticationError, ConfigurationError, NetworkError, TlsError
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, make_adapter
from rotation_lambdas.log import get_logger
from rotation_lambdas.rds import RdsLocator, read_secret
from rotation_lambdas.secret import TlsMode
from rotation_lambdas.settings import ConnectSettings
from rotation_lambdas.strategies import AlternatingUsersStrategy, SingleUserStrategy
from rotation_lambdas.strategies.alternating_users import SUPERUSER_KEY
from rotation_lambdas.strategies.base import StepContext
from rotation_lambdas.strategies.proofs import Note, Proofs

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: str
    reason: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


class Preflight:
    """Runs the checks for one secret; ``checks`` holds the results in order."""

    def __init__(
        self,
        client: Any,
        secret_id: str,
        *,
        strategy: str | None = None,
        settings: ConnectSettings | None = None,
        superuser_secret_id: str | None = None,
        rds_client_factory: Callable[[], Any] | None = None,
    ) -> None:
        self.client = client
        # RDS-managed superuser secrets: located with the command's credentials and region.
        self.rds = RdsLocator(factory=rds_client_factory)
        self.store = SecretsStore(client)
        self.secret_id = secret_id
        self.strategy = strategy
        self.settings = settings or ConnectSettings.from_env()
        self.superuser_secret_id = superuser_secret_id
        self.arn = secret_id  # the ARN once DescribeSecret has answered
        self.checks: list[Check] = []

    def add(self, name: str, status: str, reason: str, hint: str | None = "") -> bool:
        self.checks.append(Check(name, status, reason, hint or ""))
        return status in (PASS, WARN)

    def skip(self, *names: str, because: str) -> None:
        done = {c.name for c in self.checks}
        for name in names:
            if name not in done:
                self.add(name, SKIP, f"not checked: {because}")

    @property
    def ok(self) -> bool:
        return all(c.status != FAIL for c in self.checks)

    def run(self) -> list[Check]:
        later = ("format", "engine", "network", "tls", "login", "privileges")
        secret = self._secret()
        if secret is None:
            self.skip(*later, because="the secret could not be read or parsed")
            return self.checks
        strategy = self.strategy or (
            ALTERNATING_USERS if SUPERUSER_KEY in secret.raw else SINGLE_USER
        )
        self.strategy = strategy
        self.add(
            "format",
            PASS,
            f"valid for {strategy}: user '{secret.username}' at {secret.endpoint}",
        )
        function = function_name(secret.family, strategy)
        self.add(
            "engine",
            PASS,
            f"'{secret.engine}' is the {secret.family.value} family: "
            f"rotate it with the {function} function",
        )
        adapter = make_adapter(secret.family, self.settings)
        rotation: SingleUserStrategy[Any] | AlternatingUsersStrategy[Any] = (
            AlternatingUsersStrategy(adapter, self.superuser_secret_id)
            if strategy == ALTERNATING_USERS
            else SingleUserStrategy(adapter)
        )
        proofs = (*rotation.proof_steps, "privileges")
        if isinstance(rotation, AlternatingUsersStrategy):
            # Configuration first: a missing or wrong superuser secret is named even when the
            # database cannot be reached from here (the proofs below check it again).
            try:
                rotation.superuser(self._context(), secret)
            except RotationError as exc:
                self.add("superuser secret", FAIL, exc.message, exc.hint)
                self.skip("network", "tls", "login", *proofs, because="no usable superuser secret")
                return self.checks
        if not self._reachable(secret, "network"):
            self.skip("tls", "login", *proofs, because="the database is unreachable")
            return self.checks
        if not self._login(adapter, secret, "tls", "login"):
            self.skip(*proofs, because="the current credentials do not log in")
            return self.checks
        report = _Report(self)
        try:
            if isinstance(rotation, AlternatingUsersStrategy):
                self._alternating(rotation, secret, report)
            else:
                self._single_user(rotation, secret, report)
        except _Stopped:
            pass
        self.skip(*proofs, because="an earlier check failed")
        return self.checks

    # --- the checks -----------------------------------------------------------------------------

    def _context(self) -> StepContext:
        def load_stage(stage: str) -> DatabaseSecret | None:
            text = self.store.get_value(self.secret_id, stage=stage)
            return None if text is None else DatabaseSecret.parse(text, label=stage)

        def load_secret(secret_id: str, label: str) -> DatabaseSecret:
            return read_secret(self.store, secret_id, label, self.rds)

        return StepContext(get_logger(), load_stage, load_secret, self.arn)

    def _single_user(
        self, strategy: SingleUserStrategy[Any], secret: DatabaseSecret, report: _Report
    ) -> None:
        adapter = strategy.adapter
        with strategy.proven(secret, report) as conn:
            problems = adapter.own_password_problems(conn, secret)
            self._privileges(problems, f"'{secret.username}' may change its own password")
            self._lockout(adapter.lockout_after(conn))

    def _alternating(
        self, strategy: AlternatingUsersStrategy[Any], secret: DatabaseSecret, report: _Report
    ) -> None:
        with strategy.proven(self._context(), secret, None, report) as proven:
            admin, conn = strategy.admin, proven.conn
            try:
                differences = (
                    admin.parity_differences(conn, proven.base, proven.clone)
                    if admin.user_exists(conn, proven.clone)
                    else []
                )
                problems = admin.administration_problems(conn, proven.base)
            except RotationError as exc:
                self.add("privileges", FAIL, exc.message, exc.hint)
                return
            if differences:
                self.add(
                    "parity",
                    WARN,
                    f"'{proven.clone}' differs from '{proven.base}': " + "; ".join(differences),
                    "the next rotation mirrors the clone from the base",
                )
            self._privileges(
                problems,
                f"'{proven.superuser.username}' may create '{proven.clone}', set passwords and "
                "grant",
            )

    def _secret(self) -> DatabaseSecret | None:
        try:
            metadata = self.store.describe(self.secret_id)
            text = self.store.get_value(self.secret_id, stage=AWSCURRENT)
        except RotationError as exc:
            self.add(
                "secret",
                FAIL,
                f"cannot read the secret: {exc.message}",
                "check the secret id, the region, and that you may call DescribeSecret and "
                "GetSecretValue (and kms:Decrypt on its key)",
            )
            return None
        if text is None:
            self.add("secret", FAIL, "the secret has no AWSCURRENT value (or it is binary)")
            return None
        self.arn = metadata.arn or self.secret_id
        pending = unfinished_rotation(metadata.versions)
        if pending is not None:
            self.add(
                "secret",
                WARN,
                f"readable, but a rotation is in progress or stuck (AWSPENDING on {pending})",
                "re-drive it (keyturn rotate --resume) or remove that AWSPENDING label",
            )
        else:
            self.add("secret", PASS, "readable; no rotation in progress")
        try:
            secret = DatabaseSecret.parse(text, label=AWSCURRENT)
            if (self.strategy or "") == ALTERNATING_USERS or SUPERUSER_KEY in secret.raw:
                user_pair(secret.username)
        except RotationError as exc:
            self.add("format", FAIL, exc.message, exc.hint or "see the README's 'The secret'")
            return None
        return secret

    def _reachable(self, secret: DatabaseSecret, name: str) -> bool:
        try:
            with socket.create_connection(
                (secret.host, secret.port), timeout=self.settings.connect_timeout
            ):
                pass
        except OSError as exc:
            return self.add(
                name,
                FAIL,
                f"cannot reach {secret.endpoint}: {exc.strerror or type(exc).__name__}",
                "check the host and port in the secret, the server, and the security groups "
                "and network ACLs between here (or the function's subnets) and the database",
            )
        return self.add(name, PASS, f"{secret.endpoint} accepts TCP connections")

    def _login(
        self, adapter: DatabaseAdapter[Any], secret: DatabaseSecret, tls: str, login: str
    ) -> bool:
        """TLS and the login, each a row (the proofs log in again, as setSecret does)."""
        try:
            mode = adapter.tls_mode(secret)
        except ConfigurationError as exc:
            self.add(tls, FAIL, exc.message, exc.hint)
            self.skip(login, because="the TLS settings are refused (nothing was sent)")
            return False
        try:
            conn = adapter.open(secret)
        except TlsError as exc:
            self.add(tls, FAIL, exc.message, exc.hint)
            self.skip(login, because="TLS failed (no plaintext retry is ever made)")
            return False
        except AuthenticationError as exc:
            self._tls_passed(tls, mode)
            self.add(
                login,
                FAIL,
                exc.message,
                "the database does not accept the stored password: set it to the secret's, "
                "or store the database's password in the secret",
            )
            return False
        except (NetworkError, RotationError) as exc:
            self.skip(tls, because="no session was established")
            self.add(login, FAIL, exc.message, exc.hint)
            return False
        adapter.close(conn)
        self._tls_passed(tls, mode)
        self.add(login, PASS, f"'{secret.username}' logs in with the AWSCURRENT password")
        return True

    def _lockout(self, after: int | None) -> None:
        if after is None:
            return
        self.add(
            "lockout",
            WARN,
            f"the server locks the account after {after} failed logins in a row: a single-user "
            "rotation refuses every login in flight when the password changes, and as many "
            "in a row may lock it",
            "rotate it with alternating users (the password of the user in use never changes), "
            f"or keep fewer than {after} connections opening at once",
        )

    def _tls_passed(self, name: str, mode: TlsMode) -> None:
        if mode is TlsMode.DISABLE:
            self.add(name, WARN, "TLS is disabled ('disable'): the password travels in plaintext")
        elif mode in (TlsMode.VERIFY_FULL, TlsMode.VERIFY_CA):
            trust = self.settings.ca_bundle or "the system trust store"
            self.add(name, PASS, f"{mode.value}: the server's certificate verified against {trust}")
        else:
            self.add(
                name,
                WARN,
                f"{mode.value}: the server's certificate is not verified",
                "use verify-full with the database's CA bundle",
            )

    def _privileges(self, problems: list[str], allowed: str) -> None:
        if problems:
            self.add(
                "privileges",
                FAIL,
                "; ".join(problems),
                "see the README's privilege requirements for this strategy",
            )
        else:
            self.add("privileges", PASS, allowed)


class _Stopped(Exception):
    """A proof failed: the checks that depend on it are skipped."""


class _Report(Proofs):
    """The strategy's proofs as rows of the report: a failure stops the sequence."""

    def __init__(self, preflight: Preflight) -> None:
        self.preflight = preflight

    @contextmanager
    def step(self, name: str) -> Iterator[Note]:
        try:
            with super().step(name) as note:
                yield note
        except RotationError as exc:
            self.preflight.add(name, FAIL, exc.message, exc.hint)
            raise _Stopped(name) from exc

    def passed(self, name: str, note: Note) -> None:
        if note.warning:
            self.preflight.add(name, WARN, note.warning, note.hint)
        else:
            self.preflight.add(name, PASS, note.text)
