"""Account options from SHOW CREATE USER, and the statements that mirror a clone (MySQL 8 has no
server on our test machines: its statements are covered here)."""

from __future__ import annotations

import pytest

from rotation_lambdas import ConfigurationError
from rotation_lambdas.adapters.mysql_accounts import (
    AccountOptions,
    TlsRequirement,
    parse_create_user,
)
from rotation_lambdas.adapters.mysql_grants import parse_show_grants
from rotation_lambdas.adapters.mysql_statements import ServerVersion
from rotation_lambdas.adapters.mysql_users import Account, mirror_plan, parity_differences

HASH = "*2B602296A79E0A8784ACC5C88D92E46588CCA3C3"
MARIADB = ServerVersion.parse("10.11.6-MariaDB-0+deb12u1")
MYSQL8 = ServerVersion.parse("8.0.36")


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        # Read off MariaDB 10.11.
        (
            [
                f"CREATE USER `u1`@`%` IDENTIFIED BY PASSWORD '{HASH}' REQUIRE SSL WITH "
                "MAX_QUERIES_PER_HOUR 10 MAX_USER_CONNECTIONS 3 MAX_STATEMENT_TIME 2.500000 "
                "ACCOUNT LOCK PASSWORD EXPIRE INTERVAL 30 DAY"
            ],
            AccountOptions(
                require=TlsRequirement("SSL"),
                limits=(
                    ("MAX_QUERIES_PER_HOUR", "10"),
                    ("MAX_STATEMENT_TIME", "2.5"),
                    ("MAX_USER_CONNECTIONS", "3"),
                ),
                expiry_policy="INTERVAL 30 DAY",
                locked=True,
            ),
        ),
        # An expired account: MariaDB adds the policy as a second statement.
        (
            [
                f"CREATE USER `u5`@`%` IDENTIFIED BY PASSWORD '{HASH}' PASSWORD EXPIRE",
                "ALTER USER `u5`@`%` PASSWORD EXPIRE INTERVAL 5 DAY",
            ],
            AccountOptions(expiry_policy="INTERVAL 5 DAY"),
        ),
        ([f"CREATE USER `u4`@`%` IDENTIFIED BY PASSWORD '{HASH}'"], AccountOptions()),
        (
            ["CREATE USER `u`@`%` IDENTIFIED VIA ed25519 USING 'x' OR unix_socket"],
            AccountOptions(),
        ),
        # MySQL 8 prints every option, defaults included.
        (
            [
                "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$x\\'y' "
                "DEFAULT ROLE `r1`@`%`,`r2`@`localhost` REQUIRE NONE PASSWORD EXPIRE DEFAULT "
                "ACCOUNT UNLOCK PASSWORD HISTORY DEFAULT PASSWORD REUSE INTERVAL DEFAULT "
                "PASSWORD REQUIRE CURRENT DEFAULT"
            ],
            AccountOptions(),
        ),
        (
            [
                "CREATE USER `app`@`%` IDENTIFIED WITH 'caching_sha2_password' AS 0x24412430 "
                "REQUIRE X509 WITH MAX_CONNECTIONS_PER_HOUR 5 PASSWORD EXPIRE NEVER ACCOUNT LOCK "
                "PASSWORD HISTORY 5 PASSWORD REUSE INTERVAL 30 DAY PASSWORD REQUIRE CURRENT "
                "FAILED_LOGIN_ATTEMPTS 3 PASSWORD_LOCK_TIME UNBOUNDED ATTRIBUTE '{\"a\": 1}'"
            ],
            AccountOptions(
                require=TlsRequirement("X509"),
                limits=(("MAX_CONNECTIONS_PER_HOUR", "5"),),
                expiry_policy="NEVER",
                locked=True,
                password_options=(
                    ("FAILED_LOGIN_ATTEMPTS", "3"),
                    ("PASSWORD HISTORY", "5"),
                    ("PASSWORD REQUIRE CURRENT", ""),
                    ("PASSWORD REUSE INTERVAL", "30 DAY"),
                    ("PASSWORD_LOCK_TIME", "UNBOUNDED"),
                ),
            ),
        ),
    ],
)
def test_options(lines: list[str], expected: AccountOptions) -> None:
    assert parse_create_user(lines) == expected


@pytest.mark.parametrize(
    "line",
    [
        "CREATE USER `app`@`%` REQUIRE SSL SOMETHING_NEW 3",
        "CREATE USER `app`@`%` WITH MAX_QUERIES_PER_HOUR ten",
        "CREATE USER `app`@`%` WITH GRANT OPTION",
        "CREATE USER `app`@`%` PASSWORD EXPIRE INTERVAL 5 WEEK",
        "DROP USER `app`@`%`",
    ],
)
def test_unknown_options_fail_closed_without_quoting(line: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_create_user([line])
    assert "`" not in str(info.value)


def test_errors_never_show_the_hash() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_create_user([f"CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '{HASH}' BOGUS"])
    assert HASH not in str(info.value)


def test_alter_sets_every_option_and_resets_what_the_base_lacks() -> None:
    want = AccountOptions(
        require=TlsRequirement("SPECIFIED", subject="/CN=app"),
        limits=(("MAX_USER_CONNECTIONS", "3"),),
        locked=True,
    )
    have = AccountOptions(
        limits=(("MAX_QUERIES_PER_HOUR", "9"),),
        expiry_policy="NEVER",
        password_options=(("FAILED_LOGIN_ATTEMPTS", "5"),),
    )
    assert want.alter_from(want) is None
    assert want.alter_from(have) == (
        "REQUIRE SUBJECT %s WITH MAX_QUERIES_PER_HOUR 0 MAX_USER_CONNECTIONS 3 ACCOUNT LOCK "
        "PASSWORD EXPIRE DEFAULT FAILED_LOGIN_ATTEMPTS 0",
        ("/CN=app",),
    )
    assert have.differences(want) == [
        "another TLS requirement (REQUIRE)",
        "other resource limits",
        "another password expiry policy",
        "another account lock state",
        "other password options",
    ]


def grants(*lines: str) -> Account:
    return Account(parse_show_grants(lines, dynamic_privileges=True))


def test_mysql8_plan() -> None:
    base = {
        "%": Account(
            parse_show_grants(
                [
                    "GRANT SELECT, INSERT ON `shop`.* TO `app`@`%` WITH GRANT OPTION",
                    "GRANT BACKUP_ADMIN ON *.* TO `app`@`%` WITH GRANT OPTION",
                    "GRANT FLUSH_TABLES,ROLE_ADMIN ON *.* TO `app`@`%`",
                    "GRANT `reader`@`%`,`writer`@`10.0.%` TO `app`@`%`",
                    "SET DEFAULT ROLE `reader`@`%`,`writer`@`10.0.%` TO `app`@`%`",
                ],
                dynamic_privileges=True,
            ),
            AccountOptions(require=TlsRequirement("SSL"), locked=False),
        )
    }
    clone = {
        "%": Account(
            parse_show_grants(
                [
                    "GRANT DELETE ON `shop`.* TO `app_clone`@`%`",
                    "GRANT FLUSH_TABLES,ROLE_ADMIN ON *.* TO `app_clone`@`%` WITH GRANT OPTION",
                    "GRANT BACKUP_ADMIN ON *.* TO `app_clone`@`%`",
                ],
                dynamic_privileges=True,
            ),
            AccountOptions(),
        ),
        "old-host": Account(),
    }
    plan = mirror_plan(MYSQL8, "app_clone", base, clone, "pw-Clone-1")
    assert [(s.sql, s.params) for s in plan] == [
        ("GRANT INSERT, SELECT ON `shop`.* TO %s@%s WITH GRANT OPTION", ("app_clone", "%")),
        # Upgraded alone: the grant option of a dynamic privilege is its own.
        ("GRANT BACKUP_ADMIN ON *.* TO %s@%s WITH GRANT OPTION", ("app_clone", "%")),
        ("GRANT %s@%s TO %s@%s", ("reader", "%", "app_clone", "%")),
        ("GRANT %s@%s TO %s@%s", ("writer", "10.0.%", "app_clone", "%")),
        ("REVOKE DELETE ON `shop`.* FROM %s@%s", ("app_clone", "%")),
        # A grant option the base lacks: revoked with its privilege, which is granted again.
        ("REVOKE FLUSH_TABLES ON *.* FROM %s@%s", ("app_clone", "%")),
        ("GRANT FLUSH_TABLES ON *.* TO %s@%s", ("app_clone", "%")),
        ("REVOKE ROLE_ADMIN ON *.* FROM %s@%s", ("app_clone", "%")),
        ("GRANT ROLE_ADMIN ON *.* TO %s@%s", ("app_clone", "%")),
        (
            "ALTER USER %s@%s DEFAULT ROLE %s@%s, %s@%s",
            ("app_clone", "%", "reader", "%", "writer", "10.0.%"),
        ),
        (
            "ALTER USER %s@%s REQUIRE SSL ACCOUNT UNLOCK PASSWORD EXPIRE DEFAULT",
            ("app_clone", "%"),
        ),
        ("DROP USER IF EXISTS %s@%s", ("app_clone", "old-host")),
    ]
    # Static and dynamic privileges never share a statement, so no grant option spreads.
    assert not any("BACKUP_ADMIN" in s.sql and "SELECT" in s.sql for s in plan)


def test_mysql8_new_account_and_parity() -> None:
    base = {"%": grants("GRANT SELECT ON `db`.* TO `app`@`%`")}
    plan = mirror_plan(MYSQL8, "app_clone", base, {}, "pw-Clone-1")
    # Created locked, unlocked by the last statement, once it holds the base's grants.
    assert [(s.sql, s.params) for s in plan] == [
        (
            "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY %s ACCOUNT LOCK",
            ("app_clone", "%", "pw-Clone-1"),
        ),
        ("GRANT SELECT ON `db`.* TO %s@%s", ("app_clone", "%")),
        (
            "ALTER USER %s@%s REQUIRE NONE ACCOUNT UNLOCK PASSWORD EXPIRE DEFAULT",
            ("app_clone", "%"),
        ),
    ]
    assert "pw-Clone-1" not in repr(plan)  # parameters stay out of reprs and logs
    clone = {"%": grants("GRANT SELECT ON `db`.* TO `app_clone`@`%`")}
    assert parity_differences("app_clone", base, clone) == []
    wider = {"%": grants("GRANT SELECT ON `db`.* TO `app_clone`@`%` WITH GRANT OPTION")}
    assert parity_differences("app_clone", base, wider) == [
        "'app_clone'@'%' has extra GRANT OPTION ON `db`.*"
    ]
    dynamic = {"%": grants("GRANT BACKUP_ADMIN ON *.* TO `app`@`%`")}
    grantable = {"%": grants("GRANT BACKUP_ADMIN ON *.* TO `app_clone`@`%` WITH GRANT OPTION")}
    assert parity_differences("app_clone", dynamic, grantable) == [
        "'app_clone'@'%' lacks BACKUP_ADMIN ON *.*",
        "'app_clone'@'%' has extra BACKUP_ADMIN ON *.* WITH GRANT OPTION",
    ]
    locked = {"%": Account(base["%"].grants, AccountOptions(locked=True))}
    assert parity_differences("app_clone", locked, clone) == [
        "'app_clone'@'%' has another account lock state"
    ]


def test_mariadb_plan_uses_hashes_and_role_names() -> None:
    base = {
        "%": Account(
            parse_show_grants(
                ["GRANT `reporting` TO `app`@`%`", "SET DEFAULT ROLE `reporting` FOR `app`@`%`"]
            ),
            AccountOptions(limits=(("MAX_STATEMENT_TIME", "2.5"),)),
        )
    }
    plan = mirror_plan(MARIADB, "app_clone", base, {}, "password")
    assert [(s.sql, s.params) for s in plan] == [
        (
            "CREATE USER IF NOT EXISTS %s@%s IDENTIFIED BY PASSWORD %s ACCOUNT LOCK",
            ("app_clone", "%", "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"),
        ),
        ("GRANT `reporting` TO %s@%s", ("app_clone", "%")),
        ("SET DEFAULT ROLE `reporting` FOR %s@%s", ("app_clone", "%")),
        (
            "ALTER USER %s@%s REQUIRE NONE WITH MAX_STATEMENT_TIME 2.5 ACCOUNT UNLOCK "
            "PASSWORD EXPIRE DEFAULT",
            ("app_clone", "%"),
        ),
    ]


NATIVE = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"  # mysql_native_password of "password"


@pytest.mark.parametrize(
    ("line", "checked", "takes"),
    [
        # MariaDB
        (f"CREATE USER `a`@`%` IDENTIFIED BY PASSWORD '{NATIVE}'", True, True),
        (f"CREATE USER `a`@`%` IDENTIFIED VIA mysql_native_password USING '{NATIVE}'", True, True),
        # a socket-only plugin never admits a TCP login: the password still decides
        (
            f"CREATE USER `a`@`%` IDENTIFIED VIA unix_socket OR mysql_native_password "
            f"USING '{NATIVE}'",
            True,
            True,
        ),
        ("CREATE USER `a`@`%`", False, None),  # no password: any login proves nothing
        ("CREATE USER `a`@`%` IDENTIFIED VIA pam USING 'login'", False, None),
        ("CREATE USER `a`@`%` IDENTIFIED VIA unix_socket", False, None),
        ("CREATE USER `a`@`%` IDENTIFIED VIA ed25519 USING 'abcdefgh'", True, None),
        # MySQL 5.7 and 8
        (f"CREATE USER 'a'@'%' IDENTIFIED WITH 'mysql_native_password' AS '{NATIVE}'", True, True),
        (
            "CREATE USER 'a'@'%' IDENTIFIED WITH 'caching_sha2_password' AS "
            "'$A$005$salt-of-twenty-bytes-and-a-hash' REQUIRE NONE",
            True,
            None,  # salted: only a login can tell
        ),
        ("CREATE USER 'a'@'%' IDENTIFIED WITH 'caching_sha2_password'", False, None),
        ("CREATE USER 'a'@'%' IDENTIFIED WITH 'auth_socket'", False, None),
        # MySQL 8.0.27's multi-factor authentication: every factor is needed
        (
            f"CREATE USER 'a'@'%' IDENTIFIED WITH 'mysql_native_password' AS '{NATIVE}' "
            "AND IDENTIFIED WITH 'authentication_fido'",
            False,
            None,
        ),
    ],
)
def test_what_a_login_proves_and_what_a_hash_tells(
    line: str, checked: bool, takes: bool | None
) -> None:
    """password_checked: every TCP login must give a password the server checks; takes(): read
    from the stored hash, known only for mysql_native_password (so no login is needed)."""
    options = parse_create_user([line])
    assert options.password_checked is checked
    assert options.takes("password") is takes
    if takes:
        assert options.takes("another password") is False
    assert NATIVE not in repr(options)  # the stored hash stays out of reprs and logs
