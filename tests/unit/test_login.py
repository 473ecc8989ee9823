"""Why a login failed, read without trusting the server's language (keyturn_core.login)."""

from __future__ import annotations

import pymysql
import pytest
from psycopg import OperationalError, errors
from psycopg.errors import FinishedPGconn

from keyturn_core import LoginFailure, psycopg_failure, pymysql_failure

AT = 'connection failed: connection to server at "10.0.0.1", port 5432 failed: FATAL:  '


def connect_error(message: str, used_password: bool) -> OperationalError:
    """A connect-time error as psycopg raises it: no SQLSTATE, the finished connection."""
    return OperationalError(AT + message, pgconn=FinishedPGconn(used_password=used_password))


@pytest.mark.parametrize(
    ("message", "used_password", "failure"),
    [
        # A refused password, in the languages PostgreSQL ships (and one it does not).
        ('password authentication failed for user "app"', True, LoginFailure.AUTHENTICATION),
        ("Passwort-Authentifizierung für Benutzer »app« fehlgeschlagen", True, "authentication"),
        (
            "authentification par mot de passe échouée pour l'utilisateur  « app »",
            True,
            "authentication",
        ),
        ('ユーザー"app"のパスワード認証に失敗しました', True, "authentication"),
        ('пользователь "app" не прошёл проверку подлинности (по паролю)', True, "authentication"),
        # In no known language, after the password was sent: probably the credentials.
        ("xyzzy unknown language", True, LoginFailure.PROBABLY_AUTHENTICATION),
        # Rejected by pg_hba.conf before any password: the file name is never translated.
        ("kein pg_hba.conf-Eintrag für Host »10.0.0.9«, Benutzer »app«", False, "authentication"),
        # After the password was accepted (libpq did send it): never a refusal, in any language.
        ('database "nope" does not exist', True, LoginFailure.CONFIGURATION),
        ("Datenbank »nope« existiert nicht", True, LoginFailure.CONFIGURATION),
        ('too many connections for role "app"', True, LoginFailure.BUSY),
        ("zu viele Verbindungen von Rolle »app«", True, LoginFailure.BUSY),
        ("trop de connexions pour le rôle « app »", True, LoginFailure.BUSY),
        ('too many connections for database "db"', True, LoginFailure.BUSY),
        (
            "remaining connection slots are reserved for non-replication superuser connections",
            True,
            LoginFailure.BUSY,
        ),
        (
            "les emplacements de connexions restants sont réservés pour les connexions\n"
            "superutilisateur non relatif à la réplication",
            True,
            LoginFailure.BUSY,
        ),
        (  # PostgreSQL 16's wording
            'remaining connection slots are reserved for roles with privileges of the "pg_use_'
            'reserved_connections" role',
            True,
            LoginFailure.BUSY,
        ),
        ("the database system is starting up", False, LoginFailure.BUSY),
        ('permission denied for database "db"', True, LoginFailure.DENIED),
        ("keine Berechtigung für Datenbank »db«", True, LoginFailure.DENIED),
        ('role "app" is not permitted to log in', True, LoginFailure.LOCKED),
        ('database "frozen" is not currently accepting connections', True, LoginFailure.DENIED),
        ('invalid value for parameter "work_mem": "lots"', True, LoginFailure.CONFIGURATION),
        ('unrecognized configuration parameter "nope"', True, LoginFailure.CONFIGURATION),
        ("unbekannter Konfigurationsparameter »nope«", True, LoginFailure.CONFIGURATION),
        ("Rolle »app« hat keine Berechtigung zum Einloggen", True, LoginFailure.LOCKED),
        # No password asked: the network, or TLS (client-side messages, from libpq).
        ("Connection refused\n\tIs the server running on that host?", False, "network"),
        ("SSL error: certificate verify failed", False, LoginFailure.TLS),
        ("server does not support SSL, but SSL was required", False, LoginFailure.TLS),
    ],
)
def test_psycopg_at_connect(message: str, used_password: bool, failure: str) -> None:
    assert psycopg_failure(connect_error(message, used_password)) == failure


def test_psycopg_after_login_the_sqlstate_decides() -> None:
    assert psycopg_failure(errors.lookup("28P01")("x")) is LoginFailure.AUTHENTICATION
    assert psycopg_failure(errors.lookup("3D000")("x")) is LoginFailure.CONFIGURATION
    assert psycopg_failure(errors.lookup("42501")("x")) is LoginFailure.OTHER
    assert psycopg_failure(ValueError("password authentication failed")) is None


@pytest.mark.parametrize(
    ("code", "failure"),
    [
        (1045, LoginFailure.AUTHENTICATION),  # whatever the language of its text
        (1698, LoginFailure.AUTHENTICATION),
        (1862, LoginFailure.AUTHENTICATION),  # password expired
        (3118, LoginFailure.LOCKED),  # MySQL: ACCOUNT LOCK
        (3955, LoginFailure.LOCKED),  # MySQL: FAILED_LOGIN_ATTEMPTS reached
        (4150, LoginFailure.LOCKED),  # MariaDB: max_password_errors reached
        (4151, LoginFailure.LOCKED),  # MariaDB: ACCOUNT LOCK
        (1049, LoginFailure.CONFIGURATION),
        (1044, LoginFailure.DENIED),  # no access to the database
        (1040, LoginFailure.BUSY),  # too many connections
        (1226, LoginFailure.BUSY),  # a per-account limit
        (2026, LoginFailure.TLS),
        (2003, LoginFailure.NETWORK),
    ],
)
def test_pymysql_by_error_number(code: int, failure: LoginFailure) -> None:
    text = "Benutzer 'app'@'h' hat keine Zugriffsberechtigung (verwendetes Passwort: Ja)"
    assert pymysql_failure(pymysql.err.OperationalError(code, text)) is failure


def test_caching_sha2_without_cryptography_is_configuration() -> None:
    missing = RuntimeError(
        "'cryptography' package is required for sha256_password or caching_sha2_password "
        "auth methods"
    )
    assert pymysql_failure(missing) is LoginFailure.CONFIGURATION
    assert pymysql_failure(ValueError("x")) is None


def test_the_message_catalog_module_is_what_the_installed_catalogs_give() -> None:
    """keyturn_core/pg_messages.py is generated; regenerate it from this machine's server."""
    import glob

    from keyturn_core.pg_messages import MESSAGES
    from keyturn_local import pg_messages

    paths = glob.glob(pg_messages.CATALOGS)
    assert len(paths) >= 10, "PostgreSQL's message catalogs are missing (scripts/bootstrap)"
    expected = {kind: tuple(texts) for kind, texts in pg_messages.translations(paths).items()}
    assert expected == MESSAGES, "run: python -m keyturn_local.pg_messages"
    for kind, texts in MESSAGES.items():
        assert len(texts) > 2 * len(pg_messages.MSGIDS[kind]), kind  # translated, not only English


def test_a_huge_hostile_message_is_classified_quickly_and_by_its_start() -> None:
    """A server without verified TLS could send anything: the text matched is bounded."""
    import time

    hostile = 'password authentication failed for user "' + '"' * 100_000
    started = time.perf_counter()
    psycopg_failure(connect_error(hostile, True))
    assert time.perf_counter() - started < 5  # a liveness bound: it was 1.7 s per call
