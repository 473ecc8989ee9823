"""The superuser's sessions for alternating users: logged in meanwhile, kept between steps.

A login is mostly waiting on the network, so the superuser's is made in a thread while the
caller proves the rotated account (it acts only after every proof). And setSecret and testSecret
run a moment apart in the same warm function: the session one step opened serves the next, so
one rotation logs the superuser in once.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import cast

from ..adapters.base import DatabaseAdapter
from ..errors import RotationError
from ..secret import DatabaseSecret


class Opening[ConnT]:
    """A login made in a thread while the caller goes on; :meth:`result` waits for it."""

    def __init__(self, adapter: DatabaseAdapter[ConnT], secret: DatabaseSecret) -> None:
        self.adapter, self.secret = adapter, secret
        self._conn: ConnT | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._open, daemon=True)
        self._thread.start()

    def _open(self) -> None:
        try:
            self._conn = self.adapter.open(self.secret)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc

    def result(self) -> ConnT:
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._conn is not None
        return self._conn

    def settled(self) -> ConnT | None:
        """The session, once the login is over; None if it failed."""
        self._thread.join()
        return self._conn


@dataclass(frozen=True, slots=True)
class _Kept:
    key: tuple[object, ...]
    conn: object
    close: Callable[[], None]
    since: float


# The one kept superuser session of this process (a warm function's): process-wide, so it is
# closed at exit (atexit), never by the garbage collector in whatever order it frees objects.
_KEPT: list[_Kept] = []
_KEPT_LOCK = threading.Lock()


def _take_kept() -> _Kept | None:
    with _KEPT_LOCK:
        return _KEPT.pop() if _KEPT else None


def _close_kept() -> None:
    while (kept := _take_kept()) is not None:
        kept.close()


atexit.register(_close_kept)


class SuperuserSessions[ConnT]:
    """The superuser's session, kept between the steps of one rotation: setSecret, then
    testSecret a moment later, run in the same warm function. It is reused only by an adapter of
    the same kind and settings, for the same superuser secret (endpoint, user, password, TLS
    mode), within ``max_idle`` seconds, and after a probe; a step that failed closes it. A new
    login is made in a thread while the caller proves the rotated account."""

    def __init__(self, adapter: DatabaseAdapter[ConnT], max_idle: float = 60.0) -> None:
        self.adapter, self.max_idle = adapter, max_idle

    def _key(self, secret: DatabaseSecret) -> tuple[object, ...]:
        digest = hashlib.sha256(secret.password.encode()).digest()
        return (
            type(self.adapter),
            self.adapter.settings,
            secret.host,
            secret.port,
            secret.username,
            secret.tls_mode,
            digest,
        )

    def _reusable(self, secret: DatabaseSecret) -> ConnT | None:
        kept = _take_kept()
        if kept is None:
            return None
        if kept.key == self._key(secret) and time.monotonic() - kept.since < self.max_idle:
            conn = cast("ConnT", kept.conn)  # the key names this adapter's type
            try:
                self.adapter.probe(conn)
            except RotationError:
                pass
            else:
                return conn
        kept.close()
        return None

    @contextmanager
    def login(self, secret: DatabaseSecret) -> Iterator[Opening[ConnT] | Kept[ConnT]]:
        """The superuser's session for one step, kept afterwards if the step succeeded."""
        reused = self._reusable(secret)
        opening: Opening[ConnT] | Kept[ConnT] = (
            Opening(self.adapter, secret) if reused is None else Kept(reused)
        )
        try:
            yield opening
        except BaseException:
            conn = opening.settled()
            if conn is not None:
                self.adapter.close(conn)
            raise
        conn = opening.settled()
        if conn is None:
            return
        previous = _take_kept()
        adapter, kept = self.adapter, conn
        with _KEPT_LOCK:
            _KEPT.append(
                _Kept(self._key(secret), kept, lambda: adapter.close(kept), time.monotonic())
            )
        if previous is not None:
            previous.close()


@dataclass(frozen=True, slots=True)
class Kept[ConnT]:
    """A session kept from the step before, already logged in."""

    conn: ConnT

    def result(self) -> ConnT:
        return self.conn

    def settled(self) -> ConnT:
        return self.conn
