"""An in-memory database adapter for the functional tier: passwords per user, calls counted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from rotation_lambdas import AuthenticationError, DatabaseSecret, EngineFamily, NetworkError
from rotation_lambdas.adapters import DatabaseAdapter, ServerMarker, UserAdministration
from rotation_lambdas.adapters.base import PairState
from rotation_lambdas.settings import ConnectSettings

Key = tuple[str, int, str]


@dataclass
class FakeConnection:
    key: Key
    closed: bool = False


@dataclass
class FakeDatabase:
    """Users' passwords by (host, port, username)."""

    passwords: dict[Key, str] = field(default_factory=dict)
    unreachable: bool = False
    changes: int = 0
    logins: int = 0
    refused: int = 0  # logins refused (what a lockout policy counts)
    attempts: list[tuple[Key, str]] = field(default_factory=list)  # every login: where, password
    fail_after_change: int = 0  # raise this many times right after a change took effect
    trust: bool = False  # every login "works", as with pg_hba.conf's trust (passwords unchecked)

    def add(self, secret: DatabaseSecret) -> None:
        self.passwords[(secret.host, secret.port, secret.username)] = secret.password

    def password_of(self, secret: DatabaseSecret) -> str | None:
        return self.passwords.get((secret.host, secret.port, secret.username))


class FakeAdapter(DatabaseAdapter[FakeConnection]):
    max_username = 63

    def __init__(self, db: FakeDatabase, family: EngineFamily = EngineFamily.POSTGRESQL) -> None:
        super().__init__(ConnectSettings())
        self.db = db
        self.family = family

    def open(self, secret: DatabaseSecret) -> FakeConnection:
        if self.db.unreachable:
            raise NetworkError(f"fake database at {secret.endpoint} is unreachable")
        key = (secret.host, secret.port, secret.username)
        self.db.logins += 1
        self.db.attempts.append((key, secret.password))
        if not self.trust_login(key) and self.db.passwords.get(key) != secret.password:
            self.db.refused += 1
            raise AuthenticationError(f"fake database refused user '{secret.username}'")
        return FakeConnection(key)

    def trust_login(self, key: Key) -> bool:
        return self.db.trust and key in self.db.passwords

    def close(self, conn: FakeConnection) -> None:
        conn.closed = True

    def change_own_password(
        self, conn: FakeConnection, login: DatabaseSecret, new_password: str
    ) -> None:
        self.db.passwords[conn.key] = new_password
        self.db.changes += 1
        if self.db.fail_after_change > 0:
            self.db.fail_after_change -= 1
            raise NetworkError("fake connection lost after the password change")

    def probe(self, conn: FakeConnection) -> None:
        assert not conn.closed

    def login_proof_problem(
        self, conn: FakeConnection, login: DatabaseSecret, *, superuser_checks: bool = False
    ) -> str | None:
        return "the fake server checked no password" if self.db.trust else None


class FakeAdmin(FakeAdapter, UserAdministration[FakeConnection]):
    """Alternating users on the in-memory database, as a server whose hashes cannot be read
    (MySQL 8's salted caching_sha2_password) and that keeps no note on a clone: every proof of
    the pair's other user is a login. ``superuser`` must be in the database too."""

    def __init__(self, db: FakeDatabase) -> None:
        super().__init__(db)
        self.family = EngineFamily.MYSQL
        self.fail_after_set = 0  # raise this many times right after a password was set

    def claim_marker(self, conn: FakeConnection) -> ServerMarker:
        return ServerMarker(conn.key[2])  # the session's own user: one server, no relay

    def lock_holder(self, conn: FakeConnection, marker: ServerMarker) -> str | None:
        return marker.name

    def pair_state(self, conn: FakeConnection, base: str, clone: str) -> PairState:
        host, port, _ = conn.key
        return PairState(clone_exists=(host, port, clone) in self.db.passwords, clone_in_base=True)

    def refusals(
        self,
        conn: FakeConnection,
        base: str,
        clone: str,
        clone_is_ours: Callable[[], bool],
    ) -> list[str]:
        return []

    def user_exists(self, conn: FakeConnection, username: str) -> bool:
        return (*conn.key[:2], username) in self.db.passwords

    def mirror_clone(
        self, conn: FakeConnection, base: str, clone: str, clone_password: str
    ) -> None:
        self.db.passwords.setdefault((*conn.key[:2], clone), clone_password)

    def set_password(self, conn: FakeConnection, username: str, password: str) -> None:
        self.db.passwords[(*conn.key[:2], username)] = password
        self.db.changes += 1
        if self.fail_after_set > 0:
            self.fail_after_set -= 1
            raise NetworkError("fake connection lost after the password was set")

    def parity_differences(self, conn: FakeConnection, base: str, clone: str) -> list[str]:
        return []
