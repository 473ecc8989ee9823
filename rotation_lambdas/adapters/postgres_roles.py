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
keep their exact meaning. Names are compared as text (a parameter read as type ``name`` would be
cut at 63 bytes and match another role). Each fact is read in one round trip: both roles' state,
what the clone holds beyond the base, what the superuser may do.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
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
    superuser: bool = False
    note: str | None = None  # the role's comment


_STATES = """
SELECT r.rolname, r.rolcanlogin, r.rolconnlimit, r.rolvaliduntil::text, r.rolinherit,
       r.rolsuper, shobj_description(r.oid, 'pg_authid'),
       ARRAY(SELECT b.rolname::text FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid
             WHERE m.member = r.oid),
       (SELECT json_agg(json_build_array(d.datname, s.setconfig)) FROM pg_db_role_setting s
        LEFT JOIN pg_database d ON d.oid = s.setdatabase WHERE s.setrole = r.oid)
FROM pg_roles r WHERE r.rolname = ANY(%s::text[])
"""


def role_states(conn: Conn, *names: str) -> dict[str, RoleState]:
    """The roles among ``names`` that exist: attributes, memberships, settings, comment."""
    out: dict[str, RoleState] = {}
    for name, login, limit, until, inherit, superuser, note, members, config in conn.execute(
        _STATES, (list(names),)
    ).fetchall():
        settings: dict[tuple[Scope, str], str] = {}
        for dbname, entries in config or []:
            for entry in entries or []:
                key, _, value = str(entry).partition("=")
                settings[(dbname, key)] = value
        out[str(name)] = RoleState(
            name=str(name),
            can_login=bool(login),
            connection_limit=int(limit),
            valid_until=until,
            member_of=frozenset(str(m) for m in members),
            settings=settings,
            inherit=bool(inherit),
            superuser=bool(superuser),
            note=note,
        )
    return out


def role_state(conn: Conn, name: str) -> RoleState | None:
    """The role's state, or None if it does not exist."""
    return role_states(conn, name).get(name)


# Role attributes that give a session powers of its own, as pg_roles names them.
_POWER_ATTRIBUTES = (
    ("rolsuper", "SUPERUSER"),
    ("rolcreatedb", "CREATEDB"),
    ("rolcreaterole", "CREATEROLE"),
    ("rolreplication", "REPLICATION"),
    ("rolbypassrls", "BYPASSRLS"),
)
# What the clone holds beyond the base, in one query: its power attributes the base lacks, its
# memberships other than the base (or ADMIN OPTION on it), the roles that are its members (but
# the rotating superuser: from PostgreSQL 16 a role's creator is made its member), and what it
# owns or has privileges on in every database (the shared dependency catalog: ownership 'o',
# privileges 'a', policies 'r', initial privileges 'i'; 'p' is a system role's).
_EXCESS = sql.SQL("""
WITH c AS (SELECT * FROM pg_roles WHERE rolname = %(clone)s::text),
     b AS (SELECT * FROM pg_roles WHERE rolname = %(base)s::text)
SELECT ARRAY[{attributes}],
  ARRAY(SELECT CASE WHEN r.oid = b.oid THEN '' ELSE r.rolname::text END
        FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
        WHERE m.member = c.oid AND (m.roleid <> b.oid OR m.admin_option) ORDER BY 1),
  ARRAY(SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
        WHERE m.roleid = c.oid AND r.rolname NOT IN (current_user, session_user) ORDER BY 1),
  (SELECT json_agg(json_build_array(x.database, x.n) ORDER BY x.database) FROM (
     SELECT coalesce(d.datname, '') AS database, count(*) AS n FROM pg_shdepend s
     LEFT JOIN pg_database d ON d.oid = s.dbid
     WHERE s.refclassid = 'pg_authid'::regclass AND s.refobjid = c.oid AND s.deptype <> 'p'
     GROUP BY 1) x)
FROM c, b
""").format(
    attributes=sql.SQL(", ").join(
        sql.SQL("c.{0} AND NOT b.{0}").format(sql.Identifier(column))
        for column, _ in _POWER_ATTRIBUTES
    )
)


def clone_excess(conn: Conn, base: str, clone: str) -> list[str]:
    """What an existing clone holds beyond the base; [] when it holds nothing more (or is absent).

    Read-only: attributes, memberships both ways, and the shared dependency catalog, which records
    ownership and privileges of a role in every database of the cluster.
    """
    row = conn.execute(_EXCESS, {"base": base, "clone": clone}).fetchone()
    if row is None:  # one of the two does not exist
        return []
    attributes, memberships, members, dependencies = row
    out = [
        f"'{clone}' has {word}, which '{base}' lacks"
        for (_, word), extra in zip(_POWER_ATTRIBUTES, attributes, strict=True)
        if extra
    ]
    out += [
        f"'{clone}' holds ADMIN OPTION on '{base}'"
        if granted == ""
        else f"'{clone}' is a member of '{granted}'"
        for granted in memberships
    ]
    out += [f"'{member}' is a member of '{clone}'" for member in members]
    for database, count in dependencies or []:
        where = f"database '{database}'" if database else "shared objects (databases, tablespaces)"
        out.append(f"'{clone}' owns or has privileges on {count} object(s) in {where}")
    return out


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


def mirror_clone(
    conn: Conn, base: str, clone: str, verifier: Callable[[], str], note: str | None = None
) -> bool:
    """Create the clone if needed (with the password ``verifier()`` gives); make it act as, and
    look like, the base; record ``note`` as its comment (what binds it to the rotated secret).
    Only what differs is changed. True if the clone was created."""
    states = role_states(conn, base, clone)
    base_state = states.get(base)
    if base_state is None:
        raise LookupError(f"the base user '{base}' does not exist")
    clone_state = states.get(clone)
    created = clone_state is None
    if clone_state is None:
        create_login_role(conn, clone, verifier())
        clone_state = role_state(conn, clone)
        assert clone_state is not None
    until = base_state.valid_until or "infinity"
    if (
        not clone_state.can_login
        or clone_state.inherit != base_state.inherit
        or clone_state.connection_limit != base_state.connection_limit
        or (clone_state.valid_until or "infinity") != until
    ):
        attributes = sql.SQL("ALTER ROLE {} WITH LOGIN {} CONNECTION LIMIT {}").format(
            sql.Identifier(clone),
            sql.SQL("INHERIT" if base_state.inherit else "NOINHERIT"),
            sql.Literal(base_state.connection_limit),
        )
        if base_state.valid_until is not None or clone_state.valid_until is not None:
            # There is no way back to "no expiry" but 'infinity', which means the same.
            attributes = sql.SQL("{} VALID UNTIL {}").format(attributes, sql.Literal(until))
        conn.execute(attributes)
    if base not in clone_state.member_of:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(base), sql.Identifier(clone)))
    desired = desired_clone_settings(base_state)
    for (scope, name), value in desired.items():
        if clone_state.settings.get((scope, name)) != value:
            _alter_setting(conn, clone, scope, name, value)
    for scope, name in clone_state.settings.keys() - desired.keys():
        _alter_setting(conn, clone, scope, name, None)
    if note is not None and clone_state.note != note:
        conn.execute(
            sql.SQL("COMMENT ON ROLE {} IS {}").format(sql.Identifier(clone), sql.Literal(note))
        )
    return created


def parity_differences(conn: Conn, base: str, clone: str) -> list[str]:
    """How the clone fails to act as the base; empty when at parity."""
    states = role_states(conn, base, clone)
    base_state, clone_state = states.get(base), states.get(clone)
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
_ADMINISTRATION = """
SELECT r.rolname, r.rolsuper, r.rolcreaterole, current_setting('server_version_num')::int,
  (SELECT json_agg(json_build_array(t.rolname, t.rolsuper,
          pg_has_role(current_user, t.oid, 'MEMBER WITH ADMIN OPTION')))
   FROM pg_roles t WHERE t.rolname = ANY(%(roles)s::text[])),
  (SELECT json_agg(json_build_array(d.datname, s.setconfig)) FROM pg_db_role_setting s
   JOIN pg_roles b ON b.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
   WHERE b.rolname = %(base)s::text)
FROM pg_roles r WHERE r.rolname = current_user
"""


def administration_refusals(conn: Conn, base: str, clone: str) -> list[str]:
    """What the session's role lacks to rotate ``base`` and ``clone``, each with its fix; [] when
    nothing. Read-only: asked before anything is created.

    - Not a superuser: it needs CREATEROLE, and may not change a superuser.
    - PostgreSQL 16 and later: a CREATEROLE role changes only roles it holds ADMIN OPTION on (it
      has it on the roles it created itself).
    - Settings of the base (``ALTER ROLE ... SET``) that only a superuser may set, unless it was
      granted SET on them (PostgreSQL 15 and later): the clone could not act as the base.
    """
    row = conn.execute(_ADMINISTRATION, {"roles": [base, clone], "base": base}).fetchone()
    assert row is not None
    me, is_super, createrole, version, existing, config = row
    if is_super:
        return []
    who = sql.Identifier(me).as_string(conn)
    if not createrole:
        return [
            f"'{me}' is neither a superuser nor CREATEROLE, so it cannot create '{clone}' or set "
            f"passwords (fix, as a superuser: ALTER ROLE {who} CREATEROLE)"
        ]
    out: list[str] = []
    for role, superuser, administers in sorted(existing or []):
        if superuser:
            out.append(f"'{role}' is a superuser: only a superuser may change it")
        elif version >= 160000 and not administers:
            ident = sql.Identifier(role).as_string(conn)
            out.append(
                f"'{me}' holds no ADMIN OPTION on '{role}': from PostgreSQL 16 a CREATEROLE role "
                "may change only the roles it administers, and it administers only those it "
                f"created (fix: GRANT {ident} TO {who} WITH ADMIN OPTION, as a superuser or the "
                f"role that created '{role}'; or create '{role}' as '{me}')"
            )
    settings = [
        (dbname, str(entry).partition("=")[0])
        for dbname, entries in config or []
        for entry in entries or []
    ]
    names = sorted({name for _, name in settings if name != "role"})
    for name in _superuser_only(conn, names, version):
        scopes = sorted(scope or "" for scope, n in settings if n == name)
        where = "".join(f" in database '{s}'" for s in scopes if s)
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


def _superuser_only(conn: Conn, names: Iterable[str], version: int) -> list[str]:
    """Those of ``names`` this session may not set (for another role either)."""
    names = list(names)
    if not names:
        return []
    allowed = "has_parameter_privilege(name, 'SET')" if version >= 150000 else "false"
    rows = conn.execute(
        f"SELECT name FROM pg_settings WHERE name = ANY(%s::text[]) "  # noqa: S608 - constant
        f"AND context = ANY(%s::text[]) AND NOT {allowed} ORDER BY 1",
        (names, list(_SUPERUSER_CONTEXTS)),
    ).fetchall()
    return [str(r[0]) for r in rows]
