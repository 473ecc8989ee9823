"""PostgreSQL roles for alternating users: the clone acts as the base user.

Design: the base role is the one owner of everything. The clone is a LOGIN role that is a member of
the base and has ``ALTER ROLE clone SET role = base``, so every session of the clone runs as the
base (``current_user`` is the base, ``session_user`` the clone). Hence:

- objects created by either user are owned by the base and usable by both;
- a grant to the base, or a membership of it, applies to the clone at once;
- the clone copies the base's login attributes (connection limit, validity) and per-role settings
  (``search_path`` and the rest, globally and per database); if the base itself has a ``role``
  setting, the clone gets the same one and acts as that role, as the base does.

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


def role_state(conn: Conn, name: str) -> RoleState | None:
    """The role's attributes, memberships and settings, or None if it does not exist."""
    row = conn.execute(
        "SELECT rolcanlogin, rolconnlimit, rolvaliduntil::text FROM pg_roles WHERE rolname = %s",
        (name,),
    ).fetchone()
    if row is None:
        return None
    members = conn.execute(
        "SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid "
        "JOIN pg_roles r ON r.oid = m.member WHERE r.rolname = %s",
        (name,),
    ).fetchall()
    settings: dict[tuple[Scope, str], str] = {}
    for dbname, config in conn.execute(
        "SELECT d.datname, s.setconfig FROM pg_db_role_setting s "
        "JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase "
        "WHERE r.rolname = %s",
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
    )


def create_login_role(conn: Conn, name: str, verifier: str) -> None:
    """CREATE ROLE ... LOGIN PASSWORD; a concurrent creation is not an error."""
    with contextlib.suppress(pg_errors.DuplicateObject):
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


def mirror_clone(conn: Conn, base: str, clone: str, verifier: str) -> None:
    """Create the clone if needed (with ``verifier``); make it act as, and look like, the base."""
    base_state = role_state(conn, base)
    if base_state is None:
        raise LookupError(f"the base user '{base}' does not exist")
    if role_state(conn, clone) is None:
        create_login_role(conn, clone, verifier)
    clone_state = role_state(conn, clone)
    assert clone_state is not None
    attributes = sql.SQL("ALTER ROLE {} WITH LOGIN CONNECTION LIMIT {}").format(
        sql.Identifier(clone), sql.Literal(base_state.connection_limit)
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
    return out
