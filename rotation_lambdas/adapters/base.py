"""What a database adapter provides to the rotation engine and strategies."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field

from keyturn_core.login import LoginFailure

from ..canonical_name import CanonicalTarget, canonical_target
from ..errors import (
    AuthenticationError,
    ConfigurationError,
    NetworkError,
    PrivilegeError,
    RotationError,
    TlsError,
)
from ..secret import DatabaseSecret, EngineFamily, TlsMode
from ..settings import ENV_TLS_CA_BUNDLE, ENV_TLS_MIN_MODE, ConnectSettings

_MAX_DETAIL = 400


_MIN_FRAGMENT = 8


def driver_message(exc: BaseException, redact: Iterable[str] = ()) -> str:
    """The driver's message on one line, with every ``redact`` value masked.

    Server messages name users and hosts; a syntax error can quote the statement, which may hold a
    password or a hash, so callers pass what must never be shown. A server may also quote only
    part of it (MySQL's ``near '...'`` is cut at 80 characters): any run of 8 or more characters
    of a value is masked too.
    """
    text = " ".join(str(exc).split())
    for value in redact:
        if value:
            text = mask_fragments(text.replace(value, "***"), value)
    return text[:_MAX_DETAIL] if text else type(exc).__name__


def mask_fragments(text: str, secret: str, min_len: int = _MIN_FRAGMENT) -> str:
    """``text`` with every run of at least ``min_len`` characters of ``secret`` masked.

    >>> mask_fragments("near 'Ab3dEf9hIj' at line 1", "xxAb3dEf9hIjyy")
    "near '***' at line 1"
    >>> mask_fragments("a read-only transaction", "abcdefghijklmnopqrstuvwxyz")
    'a read-only transaction'
    """
    if len(secret) < min_len:
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        length = min_len
        if i + length <= len(text) and text[i : i + length] in secret:
            while i + length < len(text) and text[i : i + length + 1] in secret:
                length += 1
            out.append("***")
            i += length
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


class RedactedDriverError(Exception):
    """Stands in, as the chained cause, for a driver error whose text could quote a secret.

    Tracebacks print the whole cause chain, so a statement that carried a password or a hash is
    chained through this redacted copy, never through the driver's own exception.
    """


def redacted_cause(exc: BaseException, redact: Iterable[str]) -> RedactedDriverError:
    """A redacted stand-in for ``exc`` to use after ``from``."""
    name = f"{type(exc).__module__}.{type(exc).__qualname__}"
    return RedactedDriverError(f"{name}: {driver_message(exc, redact)}")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a login failure becomes: the error class, its message (``{where}``, ``{detail}``
    and ``{code}`` filled in) and the operator's hint."""

    error: type[RotationError]
    message: str
    hint: str | None = None

    def raise_as(self, where: str, detail: str, code: object = None) -> RotationError:
        text = self.message.format(where=where, detail=detail, code=code)
        return self.error(text, hint=self.hint)


# What a login failure means, engine by engine the same unless an adapter says otherwise.
LOGIN_OUTCOMES: dict[LoginFailure, Outcome] = {
    LoginFailure.AUTHENTICATION: Outcome(AuthenticationError, "{where}: login refused ({detail})"),
    LoginFailure.PROBABLY_AUTHENTICATION: Outcome(
        AuthenticationError, "{where}: login refused ({detail})"
    ),
    LoginFailure.DENIED: Outcome(PrivilegeError, "{where}: permission denied ({detail})"),
    LoginFailure.TLS: Outcome(
        TlsError,
        "{where}: TLS failed ({detail})",
        "check the CA bundle, the host name in the secret and the server's TLS setup; no "
        "plaintext retry was made",
    ),
    LoginFailure.NETWORK: Outcome(
        NetworkError,
        "{where}: could not connect ({detail})",
        "check the host, port, security groups and that the server is running",
    ),
    LoginFailure.CONFIGURATION: Outcome(
        ConfigurationError, "{where}: the database named by 'dbname' does not exist"
    ),
}


def classify_failure(
    failure: LoginFailure | None,
    outcomes: Mapping[LoginFailure, Outcome],
    where: str,
    detail: str,
    code: object = None,
) -> RotationError:
    """The error a driver's failure becomes: the engine's own outcome for it, else the common
    one, else a plain :class:`RotationError` naming the failure."""
    outcome = None if failure is None else outcomes.get(failure, LOGIN_OUTCOMES.get(failure))
    if outcome is None:
        return RotationError(f"{where}: {detail}")
    return outcome.raise_as(where, detail, code)


class DatabaseAdapter[ConnT](abc.ABC):
    """Connect, change a password, probe: the only database work a single-user rotation needs.

    Implementations raise :class:`AuthenticationError` when the server refuses the credentials,
    :class:`TlsError` when TLS fails and :class:`NetworkError` when the server cannot be reached,
    so callers never have to guess why a login failed.
    """

    family: EngineFamily
    max_username: int
    """The engine's limit on a user name: longer names are refused, never truncated."""
    username_unit = "characters"

    def __init__(self, settings: ConnectSettings | None = None) -> None:
        self.settings = settings if settings is not None else ConnectSettings.from_env()
        if self.settings.default_tls_mode is TlsMode.VERIFY_CA:
            self.require_ca_bundle("the function's default TLS mode")

    def username_size(self, username: str) -> int:
        """How long ``username`` is, in the unit of :attr:`max_username`."""
        return len(username)

    def check_username(self, username: str, what: str = "the username") -> None:
        """Refuse a name the server would truncate or match loosely, before any statement.

        A server that truncates long names (PostgreSQL cuts them at 63 bytes) would act on
        another account than the one named; so would one that ignores trailing spaces in a
        comparison (the MySQL family's ``PAD SPACE``).
        """
        size = self.username_size(username)
        if size > self.max_username:
            raise ConfigurationError(
                f"{what} '{username}' is {size} {self.username_unit} long, over the "
                f"{self.family.value} limit of {self.max_username}: the server would act on a "
                "truncated name, another account; nothing was sent to the database",
                hint=f"use a user name of at most {self.max_username} {self.username_unit}",
            )
        if username != username.strip() or any(ord(c) < 32 or ord(c) == 127 for c in username):
            raise ConfigurationError(
                f"{what} starts or ends with white space or holds a control character: the "
                "server may match it to another account; nothing was sent to the database",
                hint="use the account's exact name without surrounding spaces",
            )

    def require_ca_bundle(self, whose: str) -> None:
        """'verify-ca' checks the certificate against a CA but not the server's name: with the
        system's trust store any public CA's certificate would pass, so a bundle is required."""
        if self.settings.ca_bundle is None:
            raise ConfigurationError(
                f"{whose} asks for TLS mode 'verify-ca', which checks no host name and so needs "
                "the database's own CA bundle: the system trust store would accept a certificate "
                "any public CA issued for any name",
                hint=f"set {ENV_TLS_CA_BUNDLE} to the database's CA bundle, or use 'verify-full'",
            )

    def canonical_target(self, secret: DatabaseSecret, mode: TlsMode) -> CanonicalTarget | None:
        """With ``KEYTURN_TLS_VERIFY_CANONICAL_NAME`` and verify-full: the name to verify and the
        address to connect to, when the secret's host is a DNS alias (else ``None``)."""
        if mode is not TlsMode.VERIFY_FULL or not self.settings.verify_canonical_name:
            return None
        return canonical_target(secret.host, self.settings.canonical_name_suffixes)

    def tls_mode(self, secret: DatabaseSecret) -> TlsMode:
        """The secret's own TLS mode, else the function's default; never below the floor.

        Raises :class:`ConfigurationError` before any connection when the secret asks for less
        than ``KEYTURN_TLS_MIN_MODE``: whoever may write a secret must not be able to make the
        function talk to a database without the TLS its operator requires.
        """
        mode = secret.tls_mode if secret.tls_mode is not None else self.settings.default_tls_mode
        floor = self.settings.min_tls_mode
        if not mode.at_least(floor):
            raise ConfigurationError(
                f"the secret for user '{secret.username}' at {secret.endpoint} asks for TLS mode "
                f"'{mode}' ('sslmode' or 'ssl'), weaker than the function's minimum '{floor}' "
                f"({ENV_TLS_MIN_MODE}); nothing was sent to the database",
                hint=f"set the secret's 'sslmode' to '{floor}' (with the database's CA bundle), "
                f"or lower {ENV_TLS_MIN_MODE} on the function deliberately",
            )
        if mode is TlsMode.VERIFY_CA:
            self.require_ca_bundle(f"the secret for user '{secret.username}'")
        return mode

    @abc.abstractmethod
    def open(self, secret: DatabaseSecret) -> ConnT:
        """Open a connection with the secret's credentials."""

    @abc.abstractmethod
    def close(self, conn: ConnT) -> None:
        """Close a connection, ignoring errors."""

    @abc.abstractmethod
    def change_own_password(self, conn: ConnT, login: DatabaseSecret, new_password: str) -> None:
        """Set a new password for the user ``conn`` is logged in as (``login``)."""

    @abc.abstractmethod
    def probe(self, conn: ConnT) -> None:
        """Run a trivial query; raise if the connection is not usable."""

    @abc.abstractmethod
    def login_proof_problem(
        self, conn: ConnT, login: DatabaseSecret, *, superuser_checks: bool = False
    ) -> str | None:
        """Why this session, opened with ``login``, does not prove that whoever holds the secret
        controls ``login``'s account: the server matched another account, or never checked the
        password. ``None`` when it proves it. ``superuser_checks``: a superuser's session reads
        the account's authentication itself (:meth:`UserAdministration.unchecked_login`), so the
        session need not spend a query (a resource limit may count them) on it."""

    def own_password_problems(self, conn: ConnT, login: DatabaseSecret) -> list[str]:
        """Why ``login`` could not change its own password on this server; [] if it can.

        For ``keyturn preflight``: changes nothing (a dry run rolled back, or read-only checks).
        """
        raise NotImplementedError(f"{type(self).__name__} has no preflight checks")

    def other_accounts(self, conn: ConnT, login: DatabaseSecret) -> list[str] | None:
        """Other accounts of ``login``'s user name that a change of its own password would leave
        untouched (the MySQL family's ``user@host``): their hosts; ``[]`` when there are none,
        None when the session cannot tell."""
        return []

    def lockout_after(self, conn: ConnT) -> int | None:
        """After how many failed logins in a row the server locks the logged-in account, if it
        does (for ``keyturn preflight``: a single-user rotation refuses the logins in flight
        when the password changes)."""
        return None

    @contextmanager
    def connect(self, secret: DatabaseSecret) -> Iterator[ConnT]:
        """``open`` as a context manager that always closes."""
        conn = self.open(secret)
        try:
            yield conn
        finally:
            self.close(conn)

    def try_connect(self, secret: DatabaseSecret) -> ConnT | None:
        """Open a connection, or ``None`` when the server refuses the credentials.

        Network and TLS failures still raise: "does not log in" must never be confused with
        "could not ask".
        """
        try:
            return self.open(secret)
        except AuthenticationError:
            return None


@contextmanager
def superuser_errors(
    what: str,
    secrets: Sequence[str],
    *,
    driver_error: type[BaseException],
    is_privilege: Callable[[BaseException, str], bool],
    hint: str,
) -> Iterator[None]:
    """Translate the errors of a superuser session into ours, redacted, naming the action.

    ``secrets`` may still grow inside the block (a verifier or hash computed there): it is read
    only when an error is raised.
    """
    try:
        yield
    except LookupError as exc:
        raise ConfigurationError(f"cannot {what}: {exc}") from None
    except driver_error as exc:
        detail = driver_message(exc, secrets)
        if is_privilege(exc, detail):
            raise PrivilegeError(
                f"the superuser may not {what} ({detail})", hint=hint
            ) from redacted_cause(exc, secrets)
        raise RotationError(f"cannot {what} ({detail})") from redacted_cause(exc, secrets)


@dataclass(frozen=True, slots=True)
class SessionErrors:
    """How an adapter translates errors of the two sessions alternating users run: the rotated
    user's own (which only takes the proof's lock) and the superuser's."""

    driver_error: type[BaseException]
    is_privilege: Callable[[BaseException, str], bool]
    session_hint: str
    superuser_hint: str

    def on_session(self, what: str) -> AbstractContextManager[None]:
        """Errors of the rotated user's own session, translated."""
        return superuser_errors(
            what,
            (),
            driver_error=self.driver_error,
            is_privilege=self.is_privilege,
            hint=self.session_hint,
        )

    def as_superuser(self, what: str, secrets: Sequence[str]) -> AbstractContextManager[None]:
        """Errors of the superuser's session, translated and redacted of ``secrets``."""
        return superuser_errors(
            what,
            secrets,
            driver_error=self.driver_error,
            is_privilege=self.is_privilege,
            hint=self.superuser_hint,
        )


@dataclass(frozen=True, slots=True)
class ServerMarker:
    """A lock with a random name that one session holds until it closes.

    Another session sees it only on the same server (a PostgreSQL advisory lock, a MySQL user
    lock), and the server says which user holds it: this is how the function proves, on the
    superuser's own server (which the writer of the rotated secret does not control), that the
    secret's credentials logged in there as the rotated account.
    """

    name: str


@dataclass(frozen=True, slots=True)
class PairState:
    """What the superuser sees of a user pair before deciding who may be changed."""

    clone_exists: bool
    clone_in_base: bool = False
    """PostgreSQL: the clone is a member of the base (what an administrator of the base did)."""
    clone_note: str | None = None
    """PostgreSQL: the clone's comment, where the function records the secret it rotates for."""


@dataclass(frozen=True, slots=True)
class PairChange:
    """What setSecret changes, once every proof holds: the clone made to mirror the base (created
    if missing), then ``rotating``'s password."""

    base: str
    clone: str
    rotating: str
    password: str = field(repr=False)
    clone_password: str = field(repr=False)
    """The clone's password, for accounts of it created now."""
    binding: str
    """The note that binds the clone to the rotated secret (kept where the engine can)."""


class UserAdministration[ConnT](abc.ABC):
    """What the alternating-users strategy needs, done over a superuser connection.

    The base user is the canonical holder of privileges; the clone mirrors it. One method runs on
    a session of the rotated user instead (:meth:`claim_marker`); what that session reports is
    only trusted once :meth:`lock_holder`, on the superuser's session, confirms it.
    """

    binds_clones: bool = False
    """Whether :meth:`apply` records the binding note on the clone (PostgreSQL's comment), so a
    later run knows the clone as the secret's without its password."""

    @abc.abstractmethod
    def claim_marker(self, conn: ConnT) -> ServerMarker:
        """On a session of the rotated user: take a lock only same-server sessions can see."""

    @abc.abstractmethod
    def lock_holder(self, conn: ConnT, marker: ServerMarker) -> str | None:
        """On the superuser's session: the user name of the session holding ``marker`` on this
        server, or None when no session here holds it (another server)."""

    def unchecked_login(self, conn: ConnT, username: str) -> str | None:
        """On the superuser's session: why a login as ``username`` need not have checked a
        password (an account without one, or with a plugin that checks none); None if it did."""
        return None

    def administration_refusals(self, conn: ConnT, base: str, clone: str) -> list[str]:
        """What the superuser lacks to rotate the pair, found before anything is created (each
        names its fix); [] when nothing is missing."""
        return []

    @abc.abstractmethod
    def pair_state(self, conn: ConnT, base: str, clone: str) -> PairState:
        """Whether the clone exists, and what binds it to the base."""

    def password_matches(self, conn: ConnT, username: str, password: str) -> bool | None:
        """Whether ``username`` takes ``password``, read from the server's stored hash without a
        login (no failed login to count against a lockout policy); None when that cannot be
        told without logging in."""
        return None

    @abc.abstractmethod
    def refusals(
        self, conn: ConnT, base: str, clone: str, clone_is_ours: Callable[[], bool]
    ) -> list[str]:
        """Why rotating ``base`` and ``clone`` could hand out more than the base holds; [] if
        nothing.

        The rotation refuses, before any change, when this is not empty: an existing clone that
        holds more than mirroring takes away, or accounts of one user name that a single secret
        cannot prove control of. ``clone_is_ours()`` (asked only when it matters) proves that the
        secret controls the existing clone, which then cannot be someone else's account.
        """

    def administration_problems(self, conn: ConnT, base: str) -> list[str]:
        """Why this superuser connection could not rotate ``base`` and its clone; [] if it can.

        For ``keyturn preflight``: changes nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} has no preflight checks")

    @abc.abstractmethod
    def user_exists(self, conn: ConnT, username: str) -> bool:
        """Whether ``username`` exists (on any host, for the MySQL family)."""

    @abc.abstractmethod
    def mirror_clone(self, conn: ConnT, base: str, clone: str, clone_password: str) -> None:
        """Create the clone if missing (with ``clone_password``), then make it mirror the base.

        ``clone_password`` is the clone's password: the pending one when the clone is rotating,
        its current one otherwise (needed when the base gained a host the clone lacks).
        """

    @abc.abstractmethod
    def set_password(self, conn: ConnT, username: str, password: str) -> None:
        """Set another user's password (every host it is defined on, for the MySQL family)."""

    def apply(self, conn: ConnT, change: PairChange) -> None:
        """Make the change: the clone mirrors the base first, then the password is set, so a
        failure in between never leaves the rotating user's new password on a clone that does
        not yet act as the base."""
        self.mirror_clone(conn, change.base, change.clone, change.clone_password)
        self.set_password(conn, change.rotating, change.password)

    @abc.abstractmethod
    def parity_differences(self, conn: ConnT, base: str, clone: str) -> list[str]:
        """What differs between the two users' effective privileges; empty when at parity."""
