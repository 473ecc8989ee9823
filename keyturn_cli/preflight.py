"""``keyturn preflight SECRET_ID``: will rotating this secret work? Each check says why not.

Checks, in order (a failed check skips the ones that depend on it): the secret can be read and
no rotation is stuck; its JSON suits the strategy; the engine and which function to use; the
database is reachable; TLS as configured; the current credentials log in; the privileges the
strategy needs. For alternating users, also the proofs setSecret makes before the superuser acts:
the secret controls the account, the superuser's server is the secret's, and an existing clone
holds nothing beyond the base. Nothing is changed: PostgreSQL's statements run in a transaction
that is rolled back, the MySQL family's checks only read.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from rotation_lambdas import DatabaseSecret, EngineFamily, RotationError, SecretsStore
from rotation_lambdas.adapters import DatabaseAdapter, ServerMarker
from rotation_lambdas.errors import (
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    PrivilegeError,
    TlsError,
)
from rotation_lambdas.handlers import ALTERNATING_USERS, SINGLE_USER, make_adapter
from rotation_lambdas.log import get_logger
from rotation_lambdas.rds import RdsLocator, read_secret
from rotation_lambdas.secret import TlsMode
from rotation_lambdas.settings import ConnectSettings
from rotation_lambdas.stages import AWSCURRENT, unfinished_rotation
from rotation_lambdas.strategies.alternating_users import (
    SUPERUSER_KEY,
    AlternatingUsersStrategy,
    Login,
    check_username_length,
    user_pair,
)
from rotation_lambdas.strategies.base import StepContext

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
FUNCTION_PREFIX = {EngineFamily.POSTGRESQL: "postgres", EngineFamily.MYSQL: "mysql"}


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
        function = f"{FUNCTION_PREFIX[secret.family]}_{strategy.replace('-', '_')}"
        self.add(
            "engine",
            PASS,
            f"'{secret.engine}' is the {secret.family.value} family: "
            f"rotate it with the {function} function",
        )
        adapter = make_adapter(secret.family, self.settings)
        superuser = None
        if strategy == ALTERNATING_USERS:
            superuser = self._superuser(adapter, secret)  # configuration first
        proofs = ("account", "same server", "clone") if strategy == ALTERNATING_USERS else ()
        if not self._reachable(secret, "network"):
            self.skip("tls", "login", *proofs, "privileges", because="the database is unreachable")
            return self.checks
        conn = self._login(adapter, secret, "tls", "login")
        if conn is None:
            self.skip(*proofs, "privileges", because="the current credentials do not log in")
            return self.checks
        try:
            if strategy == SINGLE_USER:
                problems = adapter.own_password_problems(conn, secret)
                self._privileges(problems, f"'{secret.username}' may change its own password")
                self._lockout(adapter.lockout_after(conn))
            else:
                marker = self._account(adapter, conn, secret)
                rest = ("same server", "clone", "privileges")
                if marker is None:
                    self.skip(*rest, because="the secret does not prove control of the account")
                elif superuser is None:
                    self.skip(*rest, because="no usable superuser secret")
                else:
                    self._administration(adapter, secret, superuser, marker)
        finally:
            adapter.close(conn)
        return self.checks

    # --- the checks -----------------------------------------------------------------------------

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
                check_username_length(secret.family, user_pair(secret.username)[0])
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
    ) -> Any:
        try:
            mode = adapter.tls_mode(secret)
        except ConfigurationError as exc:
            self.add(tls, FAIL, exc.message, exc.hint)
            self.skip(login, because="the TLS settings are refused (nothing was sent)")
            return None
        try:
            conn = adapter.open(secret)
        except TlsError as exc:
            self.add(tls, FAIL, exc.message, exc.hint)
            self.skip(login, because="TLS failed (no plaintext retry is ever made)")
            return None
        except AuthenticationError as exc:
            self._tls_passed(tls, mode)
            self.add(
                login,
                FAIL,
                exc.message,
                "the database does not accept the stored password: set it to the secret's, "
                "or store the database's password in the secret",
            )
            return None
        except NetworkError as exc:
            self.skip(tls, because="no session was established")
            self.add(login, FAIL, exc.message, exc.hint)
            return None
        except RotationError as exc:
            self.skip(tls, because="no session was established")
            self.add(login, FAIL, exc.message, exc.hint)
            return None
        self._tls_passed(tls, mode)
        self.add(login, PASS, f"'{secret.username}' logs in with the AWSCURRENT password")
        return conn

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

    def _superuser(self, adapter: Any, secret: DatabaseSecret) -> DatabaseSecret | None:
        """The superuser secret, validated as setSecret would; None (and a failed check) if not."""
        strategy = AlternatingUsersStrategy(adapter, self.superuser_secret_id)

        def load_secret(secret_id: str, label: str) -> DatabaseSecret:
            return read_secret(self.store, secret_id, label, self.rds)

        context = StepContext(get_logger(), lambda _: None, load_secret, self.arn)
        try:
            superuser = strategy.superuser(context, secret)
        except RotationError as exc:
            self.add("superuser secret", FAIL, exc.message, exc.hint)
            return None
        where = f"user '{superuser.username}' at {superuser.endpoint}"
        if "host" not in superuser.raw:
            self.add(
                "superuser secret",
                WARN,
                f"{where}, located through RDS (a master secret RDS manages)",
                "the function finds it only when deployed with RdsManagedSuperusers=true",
            )
        else:
            self.add("superuser secret", PASS, where)
        return superuser

    def _account(self, adapter: Any, conn: Any, secret: DatabaseSecret) -> ServerMarker | None:
        """setSecret's first proof: the secret's credentials log in as the account itself."""
        try:
            if not adapter.logged_in_as(conn, secret.username):
                self.add(
                    "account",
                    FAIL,
                    f"the login as '{secret.username}' matched another account (anonymous or "
                    "proxied): the superuser would refuse to act",
                    "remove the anonymous accounts or the proxy grant that matched",
                )
                return None
            marker: ServerMarker = adapter.claim_marker(conn)
        except RotationError as exc:
            self.add("account", FAIL, exc.message, exc.hint)
            return None
        self.add(
            "account",
            PASS,
            f"the secret controls '{secret.username}' (its AWSCURRENT password logs in as it)",
        )
        return marker

    def _administration(
        self, adapter: Any, secret: DatabaseSecret, superuser: DatabaseSecret, marker: ServerMarker
    ) -> None:
        later = ("same server", "clone", "privileges")
        if not self._reachable(superuser, "superuser network"):
            self.skip(
                "superuser tls",
                "superuser login",
                *later,
                because="the superuser's database is unreachable",
            )
            return
        conn = self._login(adapter, superuser, "superuser tls", "superuser login")
        if conn is None:
            self.skip(*later, because="the superuser does not log in")
            return
        base, clone = user_pair(secret.username)
        strategy = AlternatingUsersStrategy(adapter)
        try:
            try:
                strategy.prove_on_superuser_server(
                    conn, marker, Login(AWSCURRENT, secret), superuser
                )
                self.add(
                    "same server",
                    PASS,
                    f"{superuser.endpoint} and {secret.endpoint} reach one server: the lock "
                    f"taken at {secret.endpoint} is held there by '{secret.username}' itself",
                )
            except PrivilegeError as exc:
                # The superuser cannot verify the proof; what else it lacks is still worth listing.
                self.add("same server", FAIL, exc.message, exc.hint)
                self.skip("clone", because="the proof could not be verified")
            except RotationError as exc:
                self.add("same server", FAIL, exc.message, exc.hint)
                self.skip("clone", "privileges", because="the superuser is on another server")
                return
            else:
                self._clone(adapter, strategy, conn, secret, base, clone)
            problems = adapter.administration_problems(conn, base)
        finally:
            adapter.close(conn)
        self._privileges(
            problems, f"'{superuser.username}' may create '{clone}', set passwords and grant"
        )

    def _clone(
        self,
        adapter: Any,
        strategy: AlternatingUsersStrategy[Any],
        conn: Any,
        secret: DatabaseSecret,
        base: str,
        clone: str,
    ) -> None:
        try:
            strategy.refuse_unsafe_pair(conn, base, clone, lambda: secret.username == clone)
            if not adapter.user_exists(conn, clone):
                self.add(
                    "clone", PASS, f"'{clone}' does not exist yet: the first rotation creates it"
                )
                return
            differences = adapter.parity_differences(conn, base, clone)
        except RotationError as exc:
            self.add("clone", FAIL, exc.message, exc.hint)
            return
        if differences:
            self.add(
                "clone",
                WARN,
                f"'{clone}' differs from '{base}': " + "; ".join(differences),
                "the next rotation mirrors the clone from the base",
            )
        else:
            self.add("clone", PASS, f"'{clone}' holds what '{base}' holds, nothing more")
