"""MySQL-family accounts for alternating users: the clone mirrors the base on every host.

For each host the base account is defined on, the clone gets an account with the same grants
(global, database, table, column and routine privileges, grant options, MySQL 8 dynamic
privileges, proxy grants), the same roles and default roles (with their hosts), and the same
account options: TLS requirement, resource limits, password expiry policy, account lock and MySQL
8's password options. Accounts of the clone on hosts the base does not have are dropped; anything
the clone holds beyond the base is revoked. Missing grants are added before extra ones are
revoked, so the clone never holds less than it needs while it may be in use.

Both users are read and parsed in full before anything changes (output that cannot be read
unambiguously fails closed, before any statement), then :func:`mirror_plan` - pure, and unit-tested
for MySQL 8 - turns the difference into statements. Statements are built from parsed, re-quoted
parts (see :mod:`.mysql_grants`); users, hosts, passwords and REQUIRE strings are bound parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pymysql.connections import Connection

from .mysql_accounts import AccountOptions, parse_create_user
from .mysql_grants import (
    Privilege,
    RoleGrant,
    UserGrants,
    group_by_object,
    parse_show_grants,
    privilege_list,
    quote_ident,
)
from .mysql_statements import ServerVersion, Statement, native_password_hash

type Conn = Connection[Any]


@dataclass(frozen=True, slots=True)
class Account:
    """One ``user@host`` account: its grants and its options."""

    grants: UserGrants = field(default_factory=UserGrants)
    options: AccountOptions = field(default_factory=AccountOptions)


type Accounts = Mapping[str, Account]  # by host


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


def grants_of(conn: Conn, version: ServerVersion, user: str, host: str) -> UserGrants:
    lines = [str(r[0]) for r in _execute(conn, "SHOW GRANTS FOR %s@%s", (user, host))]
    return parse_show_grants(
        lines, account=(user, host), dynamic_privileges=version.has_dynamic_privileges
    )


def options_of(conn: Conn, user: str, host: str) -> AccountOptions:
    rows = _execute(conn, "SHOW CREATE USER %s@%s", (user, host))
    return parse_create_user(str(r[0]) for r in rows)


def options_by_host(conn: Conn, user: str) -> dict[str, AccountOptions]:
    """Every account of ``user``: its options (authentication included), by host."""
    return {host: options_of(conn, user, host) for host in sorted(hosts_of(conn, user))}


def takes_password(conn: Conn, user: str, password: str) -> bool | None:
    """Whether every account of ``user`` takes ``password``, read from the stored hashes (no
    login); None when a hash cannot tell (a salted plugin); False when there is no account."""
    accounts = options_by_host(conn, user)
    verdicts = [options.takes(password) for options in accounts.values()]
    if not verdicts:
        return False
    if any(v is None for v in verdicts):
        return None
    return all(verdicts)


def unchecked_login(conn: Conn, user: str) -> str | None:
    """Why a login as ``user`` need not have checked a password: an account of it with no
    password, or with a plugin that checks none; None if every account checks one."""
    for host, options in options_by_host(conn, user).items():
        if not options.password_checked:
            plugins = ", ".join(sorted({p or "a password" for p, _ in options.authentication}))
            how = f"authenticates with {plugins}" if plugins else "has no password"
            return f"'{user}'@'{host}' {how}: a login as it need not have checked a password"
    return None


def read_user(conn: Conn, version: ServerVersion, user: str) -> dict[str, Account]:
    """Every account of ``user``, parsed: a host's grants and options."""
    return {
        host: Account(grants_of(conn, version, user, host), options_of(conn, user, host))
        for host in sorted(hosts_of(conn, user))
    }


def _auth(version: ServerVersion, password: str) -> tuple[str, tuple[str, ...]]:
    if version.mariadb:
        return "IDENTIFIED BY PASSWORD %s", (native_password_hash(password),)
    return "IDENTIFIED BY %s", (password,)


def set_password(conn: Conn, version: ServerVersion, user: str, password: str) -> None:
    clause, params = _auth(version, password)
    for host in sorted(hosts_of(conn, user)):
        _execute(conn, f"ALTER USER %s@%s {clause}", (user, host, *params))


def mirror_clone(
    conn: Conn, version: ServerVersion, base: str, clone: str, clone_password: str
) -> None:
    """Give the clone the base's hosts, grants, roles and account options."""
    base_accounts = read_user(conn, version, base)
    if not base_accounts:
        raise LookupError(f"the base user '{base}' does not exist")
    clone_accounts = read_user(conn, version, clone)
    for statement in mirror_plan(version, clone, base_accounts, clone_accounts, clone_password):
        _execute(conn, statement.sql, statement.params)


def mirror_plan(
    version: ServerVersion,
    clone: str,
    base_accounts: Accounts,
    clone_accounts: Accounts,
    clone_password: str,
) -> list[Statement]:
    """The statements that make ``clone`` mirror the base (pure: no server needed)."""
    out: list[Statement] = []
    for host in sorted(base_accounts):
        account = (clone, host)
        have = clone_accounts.get(host)
        if have is None:
            # Created locked: the options statement below unlocks it (as the base is) only once
            # it holds the base's grants, so a failure midway leaves no half-built login.
            clause, params = _auth(version, clone_password)
            out.append(
                Statement(
                    f"CREATE USER IF NOT EXISTS %s@%s {clause} ACCOUNT LOCK", (*account, *params)
                )
            )
            have = Account(options=AccountOptions(locked=True))
        want = base_accounts[host]
        out += _grant_statements(version, want.grants, have.grants, account)
        tail = want.options.alter_from(have.options)
        if tail is not None:
            out.append(Statement(f"ALTER USER %s@%s {tail[0]}", (*account, *tail[1])))
    for host in sorted(set(clone_accounts) - set(base_accounts)):
        out.append(Statement("DROP USER IF EXISTS %s@%s", (clone, host)))
    return out


def _grant_statements(
    version: ServerVersion, want: UserGrants, have: UserGrants, account: tuple[str, str]
) -> list[Statement]:
    out: list[Statement] = []
    static_want = {p for p in want.privileges if not p.dynamic}
    static_have = {p for p in have.privileges if not p.dynamic}
    for obj, privileges in group_by_object(static_want - static_have):
        names = [p for p in privileges if p.name != "GRANT OPTION"]
        listed = privilege_list(names) if names else "USAGE"
        option = " WITH GRANT OPTION" if len(names) < len(privileges) else ""
        out.append(Statement(f"GRANT {listed} ON {obj.sql()} TO %s@%s{option}", account))
    dynamic_want = {p.name: p for p in want.privileges if p.dynamic}
    dynamic_have = {p.name: p for p in have.privileges if p.dynamic}
    for grantable in (False, True):
        # A dynamic privilege's grant option is its own: one statement per grant option, never
        # mixed with static privileges (whose grant option covers the whole object).
        missing = [
            p
            for name, p in sorted(dynamic_want.items())
            if p.grantable is grantable
            and (name not in dynamic_have or (grantable and not dynamic_have[name].grantable))
        ]
        if missing:
            option = " WITH GRANT OPTION" if grantable else ""
            out.append(
                Statement(f"GRANT {privilege_list(missing)} ON *.* TO %s@%s{option}", account)
            )
    for role in sorted(want.roles - have.roles):
        role_sql, params = _role_sql(version, role)
        admin = " WITH ADMIN OPTION" if role.admin else ""
        out.append(Statement(f"GRANT {role_sql} TO %s@%s{admin}", (*params, *account)))
    for proxied, proxied_host, grantable in sorted(want.proxies - have.proxies):
        option = " WITH GRANT OPTION" if grantable else ""
        out.append(
            Statement(f"GRANT PROXY ON %s@%s TO %s@%s{option}", (proxied, proxied_host, *account))
        )
    for _obj, privileges in group_by_object(static_have - static_want):
        # One at a time: REVOKE of a missing column grant fails.
        out += [_revoke(privilege, account) for privilege in privileges]
    for name, privilege in sorted(dynamic_have.items()):
        wanted = dynamic_want.get(name)
        if wanted is None or (privilege.grantable and not wanted.grantable):
            out.append(_revoke(privilege, account))
            if wanted is not None:  # the grant option alone cannot be taken back
                out.append(Statement(f"GRANT {privilege_list([wanted])} ON *.* TO %s@%s", account))
    for role in sorted(have.roles - want.roles):
        role_sql, params = _role_sql(version, role)
        out.append(Statement(f"REVOKE {role_sql} FROM %s@%s", (*params, *account)))
    for proxied, proxied_host, _ in sorted(have.proxies - want.proxies):
        out.append(Statement("REVOKE PROXY ON %s@%s FROM %s@%s", (proxied, proxied_host, *account)))
    if want.default_roles != have.default_roles:
        out.append(_default_roles(version, want.default_roles, account))
    return out


def _role_sql(version: ServerVersion, role: RoleGrant) -> tuple[str, tuple[str, ...]]:
    if version.mariadb or role.role_host is None:
        return quote_ident(role.role), ()
    return "%s@%s", (role.role, role.role_host)


def _revoke(privilege: Privilege, account: tuple[str, str]) -> Statement:
    if privilege.name == "GRANT OPTION":
        return Statement(f"REVOKE GRANT OPTION ON {privilege.obj.sql()} FROM %s@%s", account)
    listed = privilege_list([privilege])
    return Statement(f"REVOKE {listed} ON {privilege.obj.sql()} FROM %s@%s", account)


def _default_roles(
    version: ServerVersion,
    roles: tuple[tuple[str, str | None], ...],
    account: tuple[str, str],
) -> Statement:
    if version.mariadb:
        # MariaDB has one default role per account, and roles without hosts.
        role = quote_ident(roles[0][0]) if roles else "NONE"
        return Statement(f"SET DEFAULT ROLE {role} FOR %s@%s", account)
    if not roles:
        return Statement("ALTER USER %s@%s DEFAULT ROLE NONE", account)
    listed = ", ".join("%s@%s" for _ in roles)
    params = [part for name, host in roles for part in (name, host or "%")]
    return Statement(f"ALTER USER %s@%s DEFAULT ROLE {listed}", (*account, *params))


def refusals(
    conn: Conn,
    version: ServerVersion,
    base: str,
    clone: str,
    clone_is_ours: Callable[[], bool],
) -> list[str]:
    """Why rotating ``base`` and ``clone`` could hand out more than the base holds; [] if nothing.

    - Accounts of one user name on several hosts must take the same password: the rotated
      secret proves control of one of them, and the rotation sets them all. (MySQL 8's
      caching_sha2_password hashes are salted, so there a user must be on one host.)
    - Nobody else may act as the clone: a PROXY grant to it, or (MySQL 8) the clone granted to
      an account as a role, would give that account the base's privileges once the clone
      mirrors the base.
    - A clone that holds more than the base, defines routines, views, events or triggers, and is
      not proven to be this secret's (``clone_is_ours``) is someone else's account: those objects
      run with its privileges, soon the base's. (Ours may define objects while it is AWSCURRENT,
      and hold more than the base when a grant was revoked from the base since: mirroring then
      revokes it, as any extra.)
    """
    base_accounts = read_user(conn, version, base)
    clone_accounts = read_user(conn, version, clone)
    out = [
        f"'{name}' has accounts on hosts {', '.join(repr(h) for h in sorted(accounts))} that take "
        "different passwords (or plugins): a secret proves control of one of them"
        for name, accounts in ((base, base_accounts), (clone, clone_accounts))
        if len({account.options.credential for account in accounts.values()}) > 1
    ]
    for user, host in _execute(
        conn, "SELECT User, Host FROM mysql.proxies_priv WHERE Proxied_user = %s", (clone,)
    ):
        out.append(f"'{user}'@'{host}' may proxy as '{clone}'")
    if version.has_dynamic_privileges:
        for user, host in _execute(
            conn, "SELECT TO_USER, TO_HOST FROM mysql.role_edges WHERE FROM_USER = %s", (clone,)
        ):
            out.append(f"'{clone}' is granted as a role to '{user}'@'{host}'")
    if clone_accounts and _holds_extra(base_accounts, clone_accounts):
        defined = _definer_objects(conn, clone)
        if defined and not clone_is_ours():
            out.append(
                f"'{clone}' holds more than '{base}' and is the definer of {defined} routine(s), "
                "view(s), event(s) or trigger(s): it is another account, not a clone"
            )
    return out


def _holds_extra(base_accounts: Accounts, clone_accounts: Accounts) -> bool:
    for host, account in clone_accounts.items():
        want = base_accounts.get(host)
        if want is None:
            return True
        if (
            account.grants.privileges - want.grants.privileges
            or account.grants.roles - want.grants.roles
            or account.grants.proxies - want.grants.proxies
        ):
            return True
    return False


# Objects whose DEFINER is the user (any host): 'user@host' starts with the name and '@'.
_DEFINED_BY = (
    "SELECT (SELECT COUNT(*) FROM information_schema.ROUTINES"
    " WHERE LEFT(DEFINER, CHAR_LENGTH(%s) + 1) = CONCAT(%s, '@'))"
    " + (SELECT COUNT(*) FROM information_schema.VIEWS"
    " WHERE LEFT(DEFINER, CHAR_LENGTH(%s) + 1) = CONCAT(%s, '@'))"
    " + (SELECT COUNT(*) FROM information_schema.EVENTS"
    " WHERE LEFT(DEFINER, CHAR_LENGTH(%s) + 1) = CONCAT(%s, '@'))"
    " + (SELECT COUNT(*) FROM information_schema.TRIGGERS"
    " WHERE LEFT(DEFINER, CHAR_LENGTH(%s) + 1) = CONCAT(%s, '@'))"
)


def _definer_objects(conn: Conn, user: str) -> int:
    rows = _execute(conn, _DEFINED_BY, (user, user) * 4)
    return int(rows[0][0]) if rows else 0


def parity_differences(clone: str, base_accounts: Accounts, clone_accounts: Accounts) -> list[str]:
    """How the clone differs from the base, per host (pure); empty when at parity."""
    if not base_accounts:
        return ["the base user does not exist"]
    base_hosts, clone_hosts = set(base_accounts), set(clone_accounts)
    out = [f"'{clone}' is not defined on host '{h}'" for h in sorted(base_hosts - clone_hosts)]
    out += [f"'{clone}' is defined on extra host '{h}'" for h in sorted(clone_hosts - base_hosts)]
    for host in sorted(base_hosts & clone_hosts):
        want, have = base_accounts[host], clone_accounts[host]
        who = f"'{clone}'@'{host}'"
        wanted, held = want.grants.privileges, have.grants.privileges
        out += [f"{who} lacks {p.describe()}" for p in sorted(wanted - held)]
        out += [f"{who} has extra {p.describe()}" for p in sorted(held - wanted)]
        out += [
            f"{who} lacks role '{r.role}'" for r in sorted(want.grants.roles - have.grants.roles)
        ]
        out += [
            f"{who} has extra role '{r.role}'"
            for r in sorted(have.grants.roles - want.grants.roles)
        ]
        if want.grants.proxies != have.grants.proxies:
            out.append(f"{who} has other PROXY grants")
        if want.grants.default_roles != have.grants.default_roles:
            out.append(f"{who} has other default roles")
        out += [f"{who} has {d}" for d in have.options.differences(want.options)]
    return out
