"""What a database adapter provides to the rotation engine and strategies."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from ..canonical_name import CanonicalTarget, canonical_target
from ..errors import AuthenticationError, ConfigurationError, PrivilegeError, RotationError
from ..secret import DatabaseSecret, EngineFamily, TlsMode
from ..settings import ENV_TLS_MIN_MODE, ConnectSettings

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


class DatabaseAdapter[ConnT](abc.ABC):
    """Connect, change a password, probe: the only database work a single-user rotation needs.

    Implementations raise :class:`AuthenticationError` when the server refuses the credentials,
    :class:`TlsError` when TLS fails and :class:`NetworkError` when the server cannot be reached,
    so callers never have to guess why a login failed.
    """

    family: EngineFamily

    def __init__(self, settings: ConnectSettings | None = None) -> None:
        self.settings = settings if settings is not None else ConnectSettings.from_env()

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

    def own_password_problems(self, conn: ConnT, login: DatabaseSecret) -> list[str]:
        """Why ``login`` could not change its own password on this server; [] if it can.

        For ``keyturn preflight``: changes nothing (a dry run rolled back, or read-only checks).
        """
        raise NotImplementedError(f"{type(self).__name__} has no preflight checks")

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
class ServerMarker:
    """A lock with a random name that one session holds until it closes.

    Another session sees it only on the same server (a PostgreSQL advisory lock, a MySQL user
    lock), and the server says which user holds it: this is how the function proves, on the
    superuser's own server (which the writer of the rotated secret does not control), that the
    secret's credentials logged in there as the rotated account.
    """

    name: str


class UserAdministration[ConnT](abc.ABC):
    """What the alternating-users strategy needs, done over a superuser connection.

    The base user is the canonical holder of privileges; the clone mirrors it. Two methods run on
    a session of the rotated user instead (:meth:`logged_in_as`, :meth:`claim_marker`); what they
    report is only trusted once :meth:`lock_holder`, on the superuser's session, confirms it.
    """

    @abc.abstractmethod
    def logged_in_as(self, conn: ConnT, username: str) -> bool:
        """On a session of the rotated user: whether the server matched ``username``'s own
        account (not an anonymous or proxied one)."""

    @abc.abstractmethod
    def claim_marker(self, conn: ConnT) -> ServerMarker:
        """On a session of the rotated user: take a lock only same-server sessions can see."""

    @abc.abstractmethod
    def lock_holder(self, conn: ConnT, marker: ServerMarker) -> str | None:
        """On the superuser's session: the user name of the session holding ``marker`` on this
        server, or None when no session here holds it (another server)."""

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

    @abc.abstractmethod
    def parity_differences(self, conn: ConnT, base: str, clone: str) -> list[str]:
        """What differs between the two users' effective privileges; empty when at parity."""
