"""Parsing SHOW GRANTS / SHOW CREATE USER of MariaDB, MySQL 8 and MySQL 5.7, and re-issuing."""

from __future__ import annotations

import pytest

from rotation_lambdas import ConfigurationError
from rotation_lambdas.adapters.mysql_accounts import TlsRequirement, parse_require
from rotation_lambdas.adapters.mysql_grants import (
    GrantObject,
    Privilege,
    RoleGrant,
    group_by_object,
    parse_show_grants,
    privilege_list,
    quote_ident,
    tokenize,
)

HASH = "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
ALL = GrantObject("", "*", "*")
SHOP = GrantObject("", "shop", "*")
CUSTOMERS = GrantObject("", "shop", "customers")

MARIADB = [
    f"GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{HASH}' REQUIRE SSL",
    "GRANT SELECT, INSERT, UPDATE ON `shop`.* TO `app`@`%` WITH GRANT OPTION",
    "GRANT SELECT (`id`, `name`), UPDATE (`name`) ON `shop`.`customers` TO `app`@`%`",
    "GRANT EXECUTE ON PROCEDURE `shop`.`refresh` TO `app`@`%`",
    "GRANT `reporting` TO `app`@`%`",
    "SET DEFAULT ROLE `reporting` FOR `app`@`%`",
]


def test_mariadb_show_grants() -> None:
    grants = parse_show_grants(MARIADB)
    assert grants.privileges == {
        Privilege(SHOP, "SELECT"),
        Privilege(SHOP, "INSERT"),
        Privilege(SHOP, "UPDATE"),
        Privilege(SHOP, "GRANT OPTION"),
        Privilege(CUSTOMERS, "SELECT", "id"),
        Privilege(CUSTOMERS, "SELECT", "name"),
        Privilege(CUSTOMERS, "UPDATE", "name"),
        Privilege(GrantObject("PROCEDURE", "shop", "refresh"), "EXECUTE"),
    }
    assert grants.roles == {RoleGrant("reporting")}
    assert grants.default_roles == (("reporting", None),)


def test_mysql8_show_grants() -> None:
    grants = parse_show_grants(
        [
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT BACKUP_ADMIN,FLUSH_TABLES ON *.* TO `app`@`%`",
            "GRANT SELECT ON `db`.* TO `app`@`%` WITH GRANT OPTION",
            "GRANT `r1`@`%`,`r2`@`localhost` TO `app`@`%` WITH ADMIN OPTION",
            "SET DEFAULT ROLE `r1`@`%`,`r2`@`localhost` TO `app`@`%`",
        ],
        account=("app", "%"),
        dynamic_privileges=True,
    )
    db = GrantObject("", "db", "*")
    assert grants.privileges == {
        Privilege(ALL, "BACKUP_ADMIN", dynamic=True),
        Privilege(ALL, "FLUSH_TABLES", dynamic=True),
        Privilege(db, "SELECT"),
        Privilege(db, "GRANT OPTION"),
    }
    assert grants.roles == {RoleGrant("r1", "%", True), RoleGrant("r2", "localhost", True)}
    # Each default role keeps its host.
    assert grants.default_roles == (("r1", "%"), ("r2", "localhost"))


def test_mysql8_dynamic_grant_option_stays_with_its_privilege() -> None:
    """MySQL 8 prints dynamic privileges per grant option; neither widens the object's."""
    grants = parse_show_grants(
        [
            "GRANT SELECT ON *.* TO `app`@`%`",
            "GRANT BACKUP_ADMIN ON *.* TO `app`@`%` WITH GRANT OPTION",
            "GRANT FLUSH_TABLES ON *.* TO `app`@`%`",
        ],
        dynamic_privileges=True,
    )
    assert grants.privileges == {
        Privilege(ALL, "SELECT"),
        Privilege(ALL, "BACKUP_ADMIN", dynamic=True, grantable=True),
        Privilege(ALL, "FLUSH_TABLES", dynamic=True),
    }
    assert Privilege(ALL, "GRANT OPTION") not in grants.privileges


def test_a_dynamic_privilege_on_a_database_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not global"):
        parse_show_grants(["GRANT BACKUP_ADMIN ON `db`.* TO `app`@`%`"], dynamic_privileges=True)


def test_mariadb_privileges_are_static_whatever_their_names() -> None:
    grants = parse_show_grants(
        ["GRANT READ_ONLY ADMIN, BINLOG MONITOR ON *.* TO `app`@`%` WITH GRANT OPTION"]
    )
    assert grants.privileges == {
        Privilege(ALL, "READ_ONLY ADMIN"),
        Privilege(ALL, "BINLOG MONITOR"),
        Privilege(ALL, "GRANT OPTION"),
    }


def test_ansi_quotes_output_fails_closed() -> None:
    """Under ANSI_QUOTES, `"ho\\_app"` is an identifier with a literal backslash, while a
    string reading would give the wildcard `ho_app`: it is never read as either."""
    with pytest.raises(ConfigurationError, match="double quotes") as info:
        parse_show_grants(['GRANT SELECT ON "ho\\_app".* TO "app"@"%"'])
    assert "ho" not in str(info.value)


def test_no_backslash_escapes_output_keeps_escaped_underscores_literal() -> None:
    """MariaDB prints the same text under NO_BACKSLASH_ESCAPES (names in backquotes, strings
    escaped): `ho\\_app` stays a literal underscore, not a wildcard."""
    grants = parse_show_grants(
        [
            "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*AB' "
            "REQUIRE SUBJECT '/CN=a\\\\b'",
            "GRANT SELECT ON `ho\\_app`.* TO `app`@`%`",
        ]
    )
    (privilege,) = grants.privileges
    assert privilege.obj == GrantObject("", "ho\\_app", "*")
    assert privilege.obj.sql() == "`ho\\_app`.*"


@pytest.mark.parametrize(
    "line",
    [
        # MySQL 5.7 prints column names bare: "a, b" could be one column or two.
        "GRANT SELECT (id, name) ON `db`.`t` TO 'app'@'%'",
        "GRANT SELECT (`id`, name) ON `db`.`t` TO 'app'@'%'",
        "GRANT SELECT (`id` `name`) ON `db`.`t` TO 'app'@'%'",
        "GRANT SELECT ON db.t TO 'app'@'%'",
        "GRANT reporting TO app@'%'",
    ],
)
def test_unquoted_names_fail_closed(line: str) -> None:
    with pytest.raises(ConfigurationError, match=r"without quotes|not understood"):
        parse_show_grants([line])


def test_a_grant_to_another_account_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="another account"):
        parse_show_grants(["GRANT SELECT ON `db`.* TO `other`@`%`"], account=("app", "%"))
    parse_show_grants(["GRANT SELECT ON `db`.* TO `app`@`%`"], account=("app", "%"))


def test_mysql57_show_grants_with_quoted_accounts() -> None:
    grants = parse_show_grants(
        [
            "GRANT USAGE ON *.* TO 'app'@'%'",
            "GRANT SELECT, CREATE TEMPORARY TABLES, SHOW VIEW ON `db`.* TO 'app'@'10.0.%'",
            "GRANT ALL PRIVILEGES ON `other`.* TO 'app'@'%'",
        ]
    )
    names = {p.name for p in grants.privileges}
    assert names == {"SELECT", "CREATE TEMPORARY TABLES", "SHOW VIEW", "ALL PRIVILEGES"}


def test_proxy_grants() -> None:
    grants = parse_show_grants(["GRANT PROXY ON 'target'@'%' TO 'app'@'%' WITH GRANT OPTION"])
    assert grants.proxies == {("target", "%", True)}
    assert grants.privileges == set()


def test_hostile_identifiers_round_trip() -> None:
    grants = parse_show_grants(["GRANT SELECT ON `we``ird`.`ta%ble; --` TO `app`@`%`"])
    (privilege,) = grants.privileges
    assert privilege.obj == GrantObject("", "we`ird", "ta%ble; --")
    # Backquotes doubled; % doubled for PyMySQL's formatting.
    assert privilege.obj.sql() == "`we``ird`.`ta%%ble; --`"
    assert quote_ident("a`b") == "`a``b`"


@pytest.mark.parametrize(
    "line",
    [
        "GRANT SELECT; DROP TABLE x ON *.* TO `app`@`%`",
        "GRANT SELECT ON `db` TO `app`@`%`",
        "GRANT SELECT ON `db.* TO `app`@`%`",
        "REVOKE INSERT ON `mysql`.* FROM `app`@`%`",
        "DROP USER `app`@`%`",
        "GRANT 'SELECT' ON *.* TO `app`@`%`",
    ],
)
def test_what_is_not_a_grant_is_refused_without_quoting_it(line: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_show_grants([line])
    assert "DROP" not in str(info.value)
    assert "`" not in str(info.value)


def test_errors_never_show_the_password_hash() -> None:
    with pytest.raises(ConfigurationError) as info:
        parse_show_grants([f"GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '{HASH}"])
    assert HASH not in str(info.value)


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        (
            f"CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '{HASH}' REQUIRE SSL",
            TlsRequirement("SSL"),
        ),
        (
            "CREATE USER `app`@`%` REQUIRE NONE PASSWORD EXPIRE DEFAULT ACCOUNT UNLOCK",
            TlsRequirement(),
        ),
        ("CREATE USER 'app'@'%' REQUIRE X509", TlsRequirement("X509")),
        ("CREATE USER `app`@`%`", TlsRequirement()),
        (
            "CREATE USER `app`@`%` REQUIRE ISSUER '/C=US/O=Ex' AND SUBJECT '/CN=app' "
            "CIPHER 'AES256'",
            TlsRequirement("SPECIFIED", "/C=US/O=Ex", "/CN=app", "AES256"),
        ),
    ],
)
def test_require_clause(statement: str, expected: TlsRequirement) -> None:
    assert parse_require(statement) == expected


def test_require_clause_renders_strings_as_parameters() -> None:
    clause = TlsRequirement("SPECIFIED", "/C=US", None, "AES").clause()
    assert clause == ("REQUIRE ISSUER %s AND CIPHER %s", ("/C=US", "AES"))
    assert TlsRequirement("SSL").clause() == ("REQUIRE SSL", ())


def test_rendering_groups_per_object() -> None:
    grants = parse_show_grants(MARIADB)
    objects = dict(group_by_object(grants.privileges))
    assert privilege_list(objects[CUSTOMERS]) == "SELECT (`id`, `name`), UPDATE (`name`)"
    assert privilege_list([Privilege(SHOP, "SELECT"), Privilege(SHOP, "SELECT", "c")]) == (
        "SELECT, SELECT (`c`)"
    )


def test_tokenizer_unescapes_strings() -> None:
    tokens = tokenize(r"'it''s' 'a\'b' `x``y`")
    assert [t.value for t in tokens] == ["it's", "a'b", "x`y"]
