"""What a database adapter provides to the rotation engine and strategies."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

from ..errors import AuthenticationError, ConfigurationError, PrivilegeError, RotationError
from ..secret import DatabaseSecret, EngineFamily, TlsMode
from ..settings import ConnectSettings

_MAX_DETAIL = 400


def driver_message(exc: BaseException, redact: Iterable[str] = ()) -> str:
    """The driver's message on one line, with every ``redact`` value masked.

    Server messages name users and hosts; a syntax error can quote the statement, which may hold a
    password or a hash, so callers pass what must never be shown.
    """
    text = " ".join(str(exc).split())
    for value in redact:
        if value:
            text = text.replace(value, "***")
    return text[:_MAX_DETAIL] if text else type(exc).__name__


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

    def tls_mode(self, secret: DatabaseSecret) -> TlsMode:
        """The secret's own TLS mode, else the function's default."""
        return secret.tls_mode if secret.tls_mode is not None else self.settings.default_tls_mode

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


class UserAdministration[ConnT](abc.ABC):
    """What the alternating-users strategy needs, done over a superuser connection.

    The base user is the canonical holder of privileges; the clone mirrors it.
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
