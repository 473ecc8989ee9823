"""PostgreSQL roles for alternating users: the clone acts as the base user.

Design: the base role is the one owner of everything. The clone is a LOGIN role that is a member of
the base and has ``ALTER ROLE clone SET role = base``, so every session of the clone runs as the
base (``current_user`` is the base, ``session_user`` the clone). Hence:

- objects created by either user are owned by the base and usable by both;
- a grant to the base, or a membership of it, applies to the clone at once;
- the clone copies the base's login attributes (INHERIT, connection limit, validity) and per-role
  settings (``search_path`` and the rest, globally and per database); if the base itself has a
  ``role`` setting, the clone gets the same one and acts as that role, as the base does.

A clone never holds more than the base: a role attribute the base lacks (SUPERUSER, CREATEDB,
CREATEROLE, REPLICATION, BYPASSRLS), a membership other than the base (or ADMIN OPTION on it), a
role other than the rotating superuser that is a member of the clone (with any option, ADMIN
included), or an object it owns or holds a privilege on, in any database,
is reported by :func:`clone_excess`; the rotation then refuses before any change, and testSecret's
parity check reports the same. (Grants in other databases cannot be revoked from this session,
and SUPERUSER, REPLICATION and BYPASSRLS only by a true superuser, so refusing is the one rule
that holds everywhere.)

All statements use ``psycopg.sql`` quoting; setting values go through ``set_config`` as bound
parameters and are stored with ``SET ... FROM CURRENT``, so list values such as ``search_path``
keep their exact meaning.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

Conn = psycopg.Connection[Any]
Scope = str | None  # a database name, or None for every database


@dataclass(frozen=True, slots=True)
class RoleState:
    """What parity compares for one role."""

    name: str
    can_login: bool
    connection_limit: int
    valid_until: str | None  # as text: 'infinity' has no datetime
    member_of: frozenset[str]
    settings: dict[tuple[Scope, str], str] = field(default_factory=dict)
    inherit: bool = True


def role_state(conn: Conn, name: str) -> RoleState | None:
    """The role's attributes, memberships and settings, or None if it does not exist."""
    # Names are compared as text: a parameter read as type name would be cut at 63 bytes and
    # match another role.
    row = conn.execute(
        "SELECT rolcanlogin, rolconnlimit, rolvaliduntil::text, rolinherit FROM pg_roles "
        "WHERE rolname = %s::text",
        (name,),
    ).fetchone()
    if row is None:
        return None
    members = conn.execute(
        "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s::text",
        (name,),
    ).fetchall()
    settings: dict[tuple[Scope, str], str] = {}
    for dbname, config in conn.execute(
        "SELECT d.datname, s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE r.rolname = %s::text",
        (name,),
    ).fetchall():
        for entry in config or []:
            key, _, value = str(entry).partition("=")
            settings[(dbname, key)] = value
    return RoleState(
        name=name,
        can_login=bool(row[0]),
        connection_limit=int(row[1]),
        valid_until=row[2],
        member_of=frozenset(str(m[0]) for m in members),
        settings=settings,
        inherit=bool(row[3]),
    )


# Role attributes that give a session powers of its own, as pg_roles names them.
_POWER_ATTRIBUTES = (
    ("rolsuper", "SUPERUSER"),
    ("rolcreatedb", "CREATEDB"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
)


def clone_excess(conn: Conn, base: str, clone: str) -> list[str]:
    """What an existing clone holds beyond the base; [] when it holds nothing more (or is absent).

    Read-only: attributes, memberships both ways, and the shared dependency catalog, which records
    ownership and privileges of a role in every database of the cluster.
    """
    columns = sql.SQL(", ").join(sql.Identifier(c) for c, _ in _POWER_ATTRIBUTES)
    rows = {
        str(r[0]): r[1:]
        for r in conn.execute(
            sql.SQL(
                "SELECT rolname, {} FROM pg_roles WHERE rolname IN (%s::text, %s::text)"
            ).format(columns),
            (base, clone),
        ).fetchall()
    }
    if clone not in rows or base not in rows:
        return []
    attributes = zip(_POWER_ATTRIBUTES, rows[clone], rows[base], strict=True)
    out = [
        f"'{clone}' has {word}, which '{base}' lacks"
        for (_, word), held, base_held in attributes
        if held and not base_held
    ]
    for (granted,) in conn.execute(_MEMBERSHIPS, (clone, base)).fetchall():
        out.append(
            f"'{clone}' holds ADMIN OPTION on '{base}'"
            if granted == base
            else f"'{clone}' is a member of '{granted}'"
        )
    # Any member may act as the clone, or (ADMIN OPTION) take it over. Only the superuser doing
    # the rotation is exempt: from PostgreSQL 16 a role's creator is made its member.
    for (member,) in conn.execute(_MEMBERS, (clone,)).fetchall():
        out.append(f"'{member}' is a member of '{clone}'")
    for database, count in conn.execute(_DEPENDENCIES, (clone,)).fetchall():
        where = f"database '{database}'" if database else "shared objects (databases, tablespaces)"
        out.append(f"'{clone}' owns or has privileges on {count} object(s) in {where}")
    return out


_ROLE_OID = "(SELECT oid FROM pg_roles WHERE rolname = %s::text)"
_MEMBERSHIPS = sql.SQL(
    "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid "
    "WHERE m.member = {role} AND (m.roleid <> {role} OR m.admin_option) ORDER BY 1"
).format(role=sql.SQL(_ROLE_OID))
_MEMBERS = sql.SQL(
    "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member "
    "WHERE m.roleid = {role} AND r.rolname NOT IN (current_user, session_user) ORDER BY 1"
).format(role=sql.SQL(_ROLE_OID))
# Ownership ('o'), privileges ('a'), policies ('r') and initial privileges ('i') of the role, in
# every database; 'p' (pinned) is a system role's.
_DEPENDENCIES = sql.SQL(
    "SELECT coalesce(d.datname, ''), count(*) FROM pg_shdepend s "
    "LEFT JOIN pg_database d ON d.oid = s.dbid "
    "WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = {role} "
    "AND s.deptype <> 'p' GROUP BY 1 ORDER BY 1"
).format(role=sql.SQL(_ROLE_OID))


def create_login_role(conn: Conn, name: str, verifier: str) -> None:
    """CREATE ROLE ... LOGIN PASSWORD; a concurrent creation is not an error (a savepoint keeps
    the caller's transaction usable)."""
    with contextlib.suppress(pg_errors.DuplicateObject), conn.transaction():
        conn.execute(
            sql.SQL("CREATE ROLE {} WITH LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(verifier)
            )
        )


def set_password(conn: Conn, name: str, verifier: str) -> None:
    conn.execute(
        sql.SQL("ALTER ROLE {} WITH PASSWORD {}").format(
            sql.Identifier(name), sql.Literal(verifier)
        )
    )


def desired_clone_settings(base: RoleState) -> dict[tuple[Scope, str], str]:
    """The base's settings, and ``role`` so that the clone acts as the base."""
    desired = dict(base.settings)
    desired.setdefault((None, "role"), base.name)
    return desired


def _alter_setting(conn: Conn, role: str, scope: Scope, name: str, value: str | None) -> None:
    target = sql.SQL("ALTER ROLE {}").format(sql.Identifier(role))
    if scope is not None:
        target = sql.SQL("{} IN DATABASE {}").format(target, sql.Identifier(scope))
    if value is None:
        conn.execute(sql.SQL("{} RESET {}").format(target, sql.Identifier(name)))
    elif name == "role":
        # Applying "role" in this session would switch our own identity: store the name directly.
        conn.execute(sql.SQL("{} SET role = {}").format(target, sql.Literal(value)))
    else:
        with conn.transaction():
            conn.execute("SELECT set_config(%s, %s, true)", (name, value))
            conn.execute(sql.SQL("{} SET {} FROM CURRENT").format(target, sql.Identifier(name)))


def pair_state(conn: Conn, base: str, clone: str) -> tuple[bool, bool, str | None]:
    """Whether the clone exists, whether it is a member of the base, and its comment."""
    row = conn.execute(
        "SELECT c.oid IS NOT NULL, EXISTS (SELECT 1 FROM pg_auth_members m "
        "WHERE m.roleid = b.oid AND m.member = c.oid), shobj_description(c.oid, 'pg_authid') "
        "FROM (SELECT 1) AS one LEFT JOIN pg_roles c ON c.rolname = %s::text "
        "LEFT JOIN pg_roles b ON b.rolname = %s::text",
        (clone, base),
    ).fetchone()
    assert row is not None
    return bool(row[0]), bool(row[1]), row[2]


def mirror_clone(conn: Conn, base: str, clone: str, verifier: str, note: str | None = None) -> None:
    """Create the clone if needed (with ``verifier``); make it act as, and look like, the base;
    record ``note`` as its comment (what binds it to the rotated secret)."""
    base_state = role_state(conn, base)
    if base_state is None:
        raise LookupError(f"the base user '{base}' does not exist")
    if role_state(conn, clone) is None:
        create_login_role(conn, clone, verifier)
    clone_state = role_state(conn, clone)
    assert clone_state is not None
    attributes = sql.SQL("ALTER ROLE {} WITH LOGIN {} CONNECTION LIMIT {}").format(
        sql.Identifier(clone),
        sql.SQL("INHERIT" if base_state.inherit else "NOINHERIT"),
        sql.Literal(base_state.connection_limit),
    )
    if base_state.valid_until is not None or clone_state.valid_until is not None:
        # There is no way back to "no expiry" but 'infinity', which means the same.
        until = base_state.valid_until or "infinity"
        attributes = sql.SQL("{} VALID UNTIL {}").format(attributes, sql.Literal(until))
    conn.execute(attributes)
    conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(base), sql.Identifier(clone)))
    desired = desired_clone_settings(base_state)
    for (scope, name), value in desired.items():
        if clone_state.settings.get((scope, name)) != value:
            _alter_setting(conn, clone, scope, name, value)
    for scope, name in clone_state.settings.keys() - desired.keys():
        _alter_setting(conn, clone, scope, name, None)
    if note is not None:
        conn.execute(
            sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(clone), sql.Literal(note))
        )


def parity_differences(conn: Conn, base: str, clone: str) -> list[str]:
    """How the clone fails to act as the base; empty when at parity."""
    base_state = role_state(conn, base)
    clone_state = role_state(conn, clone)
    if base_state is None or clone_state is None:
        missing = base if base_state is None else clone
        return [f"the user '{missing}' does not exist"]
    out: list[str] = []
    if not clone_state.can_login:
        out.append(f"'{clone}' cannot log in")
    if clone_state.inherit != base_state.inherit:
        out.append(f"'{clone}' has another INHERIT setting than '{base}'")
    if clone_state.connection_limit != base_state.connection_limit:
        out.append(f"'{clone}' has another connection limit than '{base}'")
    if (clone_state.valid_until or "infinity") != (base_state.valid_until or "infinity"):
        out.append(f"'{clone}' has another password validity than '{base}'")
    if base not in clone_state.member_of:
        out.append(f"'{clone}' is not a member of '{base}'")
    desired = desired_clone_settings(base_state)
    differing = {
        key
        for key in desired.keys() | clone_state.settings.keys()
        if desired.get(key) != clone_state.settings.get(key)
    }
    for scope, name in sorted(differing, key=lambda k: (k[0] or "", k[1])):
        where = f" in database '{scope}'" if scope else ""
        if name == "role":
            out.append(f"'{clone}' does not act as '{desired.get((scope, name), base)}'{where}")
        else:
            out.append(f"setting '{name}'{where} differs between '{base}' and '{clone}'")
    return out + clone_excess(conn, base, clone)


# Contexts of settings only a superuser (or, from PostgreSQL 15, a role granted SET on the
# parameter) may set, for itself or another role.
_SUPERUSER_CONTEXTS = ("superuser", "superuser-backend")


def administration_refusals(conn: Conn, base: str, clone: str) -> list[str]:
    """What the session's role lacks to rotate ``base`` and ``clone``, each with its fix; [] when
    nothing. Read-only: asked before anything is created.

    - Not a superuser: it needs CREATEROLE, and may not change a superuser.
    - PostgreSQL 16 and later: a CREATEROLE role changes only roles it holds ADMIN OPTION on (it
      has it on the roles it created itself).
    - Settings of the base (``ALTER ROLE ... SET``) that only a superuser may set, unless it was
      granted SET on them (PostgreSQL 15 and later): the clone could not act as the base.
    """
    row = conn.execute(
        "SELECT r.rolname, r.rolsuper, r.rolcreaterole, current_setting('server_version_num')::int "
        "FROM pg_roles r WHERE r.rolname = current_user"
    ).fetchone()
    assert row is not None
    me, is_super, createrole, version = str(row[0]), bool(row[1]), bool(row[2]), int(row[3])
    if is_super:
        return []
    who = sql.Identifier(me).as_string(conn)
    if not createrole:
        return [
            f"'{me}' is neither a superuser nor CREATEROLE, so it cannot create '{clone}' or set "
            f"passwords (fix, as a superuser: ALTER ROLE {who} CREATEROLE)"
        ]
    out: list[str] = []
    existing = {
        str(name): bool(superuser)
        for name, superuser in conn.execute(
            "SELECT rolname, rolsuper FROM pg_roles WHERE rolname IN (%s::text, %s::text)",
            (base, clone),
        ).fetchall()
    }
    for role, superuser in sorted(existing.items()):
        if superuser:
            out.append(f"'{role}' is a superuser: only a superuser may change it")
        elif version >= 160000 and not _administers(conn, role):
            ident = sql.Identifier(role).as_string(conn)
            out.append(
                f"'{me}' holds no ADMIN OPTION on '{role}': from PostgreSQL 16 a CREATEROLE role "
                "may change only the roles it administers, and it administers only those it "
                f"created (fix: GRANT {ident} TO {who} WITH ADMIN OPTION, as a superuser or the "
                f"role that created '{role}'; or create '{role}' as '{me}')"
            )
    state = role_state(conn, base)
    for scope, name in sorted(state.settings if state else {}, key=lambda k: (k[0] or "", k[1])):
        if name == "role" or _may_set(conn, name, version):
            continue
        where = f" in database '{scope}'" if scope else ""
        grant = (
            f"GRANT SET ON PARAMETER {sql.Identifier(name).as_string(conn)} TO {who}, as a "
            "superuser; or "
            if version >= 150000
            else ""
        )
        out.append(
            f"'{base}' has the setting {name}{where} (ALTER ROLE ... SET), which only a "
            f"superuser may give '{clone}', so '{clone}' could not act as '{base}' "
            f"(fix: {grant}remove the setting from '{base}')"
        )
    return out


def _administers(conn: Conn, role: str) -> bool:
    row = conn.execute(
        "SELECT pg_has_role(current_user, (SELECT oid FROM pg_roles WHERE rolname = %s::text), "
        "'MEMBER WITH ADMIN OPTION')",
        (role,),
    ).fetchone()
    return bool(row and row[0])


def _may_set(conn: Conn, name: str, version: int) -> bool:
    row = conn.execute("SELECT context FROM pg_settings WHERE name = %s", (name,)).fetchone()
    if row is None or row[0] not in _SUPERUSER_CONTEXTS:
        return True  # a user setting, or a placeholder (an extension's, not loaded here)
    if version < 150000:
        return False
    allowed = conn.execute("SELECT has_parameter_privilege(%s, 'SET')", (name,)).fetchone()
    return bool(allowed and allowed[0])
