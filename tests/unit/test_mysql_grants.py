"""Parsing SHOW GRANTS / SHOW CREATE USER of MariaDB, MySQL 8 and MySQL 5.7, and re-issuing."""

from __future__ import annotations

import pytest

from rotation_lambdas import ConfigurationError
from rotation_lambdas.adapters.mysql_grants import (
    GrantObject,
    Privilege,
    RoleGrant,
    TlsRequirement,
    group_by_object,
    parse_require,
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
    assert grants.default_roles == ("reporting",)


def test_mysql8_show_grants() -> None:
    grants = parse_show_grants(
        [
            "GRANT USAGE ON *.* TO `app`@`%`",
            "GRANT BACKUP_ADMIN,FLUSH_TABLES ON *.* TO `app`@`%`",
            "GRANT SELECT ON `db`.* TO `app`@`%` WITH GRANT OPTION",
            "GRANT `r1`@`%`,`r2`@`localhost` TO `app`@`%` WITH ADMIN OPTION",
        ]
    )
    db = GrantObject("", "db", "*")
    assert grants.privileges == {
        Privilege(ALL, "BACKUP_ADMIN"),
        Privilege(ALL, "FLUSH_TABLES"),
        Privilege(db, "SELECT"),
        Privilege(db, "GRANT OPTION"),
    }
    assert grants.roles == {RoleGrant("r1", "%", True), RoleGrant("r2", "localhost", True)}


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
