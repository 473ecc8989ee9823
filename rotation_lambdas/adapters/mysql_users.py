"""MySQL-family accounts for alternating users: the clone mirrors the base on every host.

For each host the base account is defined on, the clone gets an account with the same grants
(global, database, table, column and routine privileges, WITH GRANT OPTION, proxy grants), the
same roles and default roles, and the same TLS requirement (REQUIRE). Accounts of the clone on
hosts the base does not have are dropped. Missing grants are added before extra ones are revoked,
so the clone never holds less than it needs while it may be in use.

Statements are built from parsed, re-quoted parts (see :mod:`.mysql_grants`); users, hosts,
passwords and REQUIRE strings are bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymysql.connections import Connection

from .mysql_grants import (
    Privilege,
    RoleGrant,
    TlsRequirement,
    UserGrants,
    group_by_object,
    parse_require,
    parse_show_grants,
    privilege_list,
    quote_ident,
)
from .mysql_statements import ServerVersion, native_password_hash

type Conn = Connection[Any]


def _execute(conn: Conn, statement: str, params: Sequence[str] = ()) -> list[tuple[Any, ...]]:
    with conn.cursor() as cur:
        cur.execute(statement, tuple(params))
        return list(cur.fetchall())


def hosts_of(conn: Conn, user: str) -> set[str]:
    """Every host the account ``user`` is defined on (roles excluded)."""
    rows = _execute(conn, "SELECT Host FROM mysql.user WHERE User = %s", (user,))
    hosts = {str(r[0]) for r in rows}
    if hosts:
        # MariaDB lists roles in mysql.user with an empty host; they are not accounts.
        hosts.discard("")
    return hosts


def grants_of(conn: Conn, user: str, host: str) -> UserGrants:
    lines = [str(r[0]) for r in _execute(conn, "SHOW GRANTS FOR %s@%s", (user, host))]
    return parse_show_grants(lines)


def require_of(conn: Conn, user: str, host: str) -> TlsRequirement:
    rows = _execute(conn, "SHOW CREATE USER %s@%s", (user, host))
    return parse_require(str(rows[0][0])) if rows else TlsRequirement()


def _auth(version: ServerVersion, password: str) -> tuple[str, tuple[str, ...]]:
    if version.mariadb:
        return "IDENTIFIED BY PASSWORD %s", (native_password_hash(password),)
    return "IDENTIFIED BY %s", (password,)


def create_account(conn: Conn, version: ServerVersion, user: str, host: str, password: str) -> None:
    clause, params = _auth(version, password)
    _execute(conn, f"CREATE USER IF NOT EXISTS %s@%s {clause}", (user, host, *params))


def set_password(conn: Conn, version: ServerVersion, user: str, password: str) -> None:
    clause, params = _auth(version, password)
    for host in sorted(hosts_of(conn, user)):
        _execute(conn, f"ALTER USER %s@%s {clause}", (user, host, *params))


def _role_sql(version: ServerVersion, role: RoleGrant) -> tuple[str, tuple[str, ...]]:
    if version.mariadb or role.role_host is None:
        return quote_ident(role.role), ()
    return "%s@%s", (role.role, role.role_host)


def _sync_host(conn: Conn, version: ServerVersion, base: str, clone: str, host: str) -> None:
    want = grants_of(conn, base, host)
    have = grants_of(conn, clone, host)
    account = (clone, host)
    for obj, privileges in group_by_object(want.privileges - have.privileges):
        names = [p for p in privileges if p.name != "GRANT OPTION"]
        listed = privilege_list(names) if names else "USAGE"
        option = " WITH GRANT OPTION" if len(names) < len(privileges) else ""
        _execute(conn, f"GRANT {listed} ON {obj.sql()} TO %s@%s{option}", account)
    for role in sorted(want.roles - have.roles):
        role_sql, params = _role_sql(version, role)
        admin = " WITH ADMIN OPTION" if role.admin else ""
        _execute(conn, f"GRANT {role_sql} TO %s@%s{admin}", (*params, *account))
    for proxied, proxied_host, grantable in sorted(want.proxies - have.proxies):
        option = " WITH GRANT OPTION" if grantable else ""
        _execute(conn, f"GRANT PROXY ON %s@%s TO %s@%s{option}", (proxied, proxied_host, *account))
    for _obj, privileges in group_by_object(have.privileges - want.privileges):
        for privilege in privileges:  # one at a time: REVOKE of a missing column grant fails
            _revoke(conn, privilege, account)
    for role in sorted(have.roles - want.roles):
        role_sql, params = _role_sql(version, role)
        _execute(conn, f"REVOKE {role_sql} FROM %s@%s", (*params, *account))
    for proxied, proxied_host, _ in sorted(have.proxies - want.proxies):
        _execute(conn, "REVOKE PROXY ON %s@%s FROM %s@%s", (proxied, proxied_host, *account))
    if want.default_roles != have.default_roles:
        _set_default_roles(conn, version, want.default_roles, account)
    required = require_of(conn, base, host)
    if require_of(conn, clone, host) != required:
        clause, params = required.clause()
        _execute(conn, f"ALTER USER %s@%s {clause}", (*account, *params))


def _revoke(conn: Conn, privilege: Privilege, account: tuple[str, str]) -> None:
    if privilege.name == "GRANT OPTION":
        _execute(conn, f"REVOKE GRANT OPTION ON {privilege.obj.sql()} FROM %s@%s", account)
    else:
        listed = privilege_list([privilege])
        _execute(conn, f"REVOKE {listed} ON {privilege.obj.sql()} FROM %s@%s", account)


def _set_default_roles(
    conn: Conn, version: ServerVersion, roles: tuple[str, ...], account: tuple[str, str]
) -> None:
    if version.mariadb:
        # MariaDB has one default role per account.
        role = quote_ident(roles[0]) if roles else "NONE"
        _execute(conn, f"SET DEFAULT ROLE {role} FOR %s@%s", account)
    else:
        listed = ", ".join(quote_ident(r) for r in roles) or "NONE"
        _execute(conn, f"ALTER USER %s@%s DEFAULT ROLE {listed}", account)


def mirror_clone(
    conn: Conn, version: ServerVersion, base: str, clone: str, clone_password: str
) -> None:
    """Give the clone the base's hosts, grants, roles and TLS requirement."""
    base_hosts = hosts_of(conn, base)
    if not base_hosts:
        raise LookupError(f"the base user '{base}' does not exist")
    clone_hosts = hosts_of(conn, clone)
    for host in sorted(base_hosts - clone_hosts):
        create_account(conn, version, clone, host, clone_password)
    for host in sorted(base_hosts):
        _sync_host(conn, version, base, clone, host)
    for host in sorted(clone_hosts - base_hosts):
        _execute(conn, "DROP USER IF EXISTS %s@%s", (clone, host))


def parity_differences(conn: Conn, base: str, clone: str) -> list[str]:
    """How the clone differs from the base, per host; empty when at parity."""
    base_hosts, clone_hosts = hosts_of(conn, base), hosts_of(conn, clone)
    if not base_hosts:
        return [f"the user '{base}' does not exist"]
    out = [f"'{clone}' is not defined on host '{h}'" for h in sorted(base_hosts - clone_hosts)]
    out += [f"'{clone}' is defined on extra host '{h}'" for h in sorted(clone_hosts - base_hosts)]
    for host in sorted(base_hosts & clone_hosts):
        want, have = grants_of(conn, base, host), grants_of(conn, clone, host)
        who = f"'{clone}'@'{host}'"
        out += [f"{who} lacks {p.describe()}" for p in sorted(want.privileges - have.privileges)]
        out += [
            f"{who} has extra {p.describe()}" for p in sorted(have.privileges - want.privileges)
        ]
        out += [f"{who} lacks role '{r.role}'" for r in sorted(want.roles - have.roles)]
        out += [f"{who} has extra role '{r.role}'" for r in sorted(have.roles - want.roles)]
        if want.proxies != have.proxies:
            out.append(f"{who} has other PROXY grants")
        if want.default_roles != have.default_roles:
            out.append(f"{who} has other default roles")
        if require_of(conn, base, host) != require_of(conn, clone, host):
            out.append(f"{who} has another TLS requirement (REQUIRE)")
    return out
