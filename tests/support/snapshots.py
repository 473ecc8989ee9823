"""Everything an attack must leave untouched on a server: accounts, passwords, attributes,
memberships, settings and grants, read as the server's administrator."""

from __future__ import annotations

from typing import Any

from keyturn_local.servers import MariaDBServer, PostgresServer
from keyturn_local.users import admin_mariadb, admin_postgres

Snapshot = dict[str, list[tuple[Any, ...]]]

_POSTGRES = {
    "roles": "SELECT rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, "
    "rolreplication, rolbypassrls, rolconnlimit, rolpassword, rolvaliduntil::text "
    "FROM pg_authid ORDER BY 1",
    "memberships": "SELECT r.rolname, m.rolname, a.admin_option FROM pg_auth_members a "
    "JOIN pg_authid r ON r.oid = a.roleid JOIN pg_authid m ON m.oid = a.member ORDER BY 1, 2",
    "settings": "SELECT coalesce(d.datname, ''), r.rolname, s.setconfig::text "
    "FROM pg_db_role_setting s JOIN pg_authid r ON r.oid = s.setrole "
    "LEFT JOIN pg_database d ON d.oid = s.setdatabase ORDER BY 1, 2",
    "dependencies": "SELECT coalesce(d.datname, ''), s.classid::regclass::text, s.objid, "
    "r.rolname, s.deptype FROM pg_shdepend s JOIN pg_authid r ON r.oid = s.refobjid "
    "LEFT JOIN pg_database d ON d.oid = s.dbid "
    "WHERE s.refclassid = 'pg_authid'::regclass ORDER BY 1, 2, 3, 4, 5",
    "relations": "SELECT oid::regclass::text, relowner::regrole::text, relacl::text "
    "FROM pg_class WHERE relnamespace::regnamespace::text NOT IN "
    "('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1",
    "schemas": "SELECT nspname, nspowner::regrole::text, nspacl::text FROM pg_namespace ORDER BY 1",
    "databases": "SELECT datname, datdba::regrole::text, datacl::text FROM pg_database ORDER BY 1",
    "role comments": "SELECT r.rolname, d.description FROM pg_shdescription d "
    "JOIN pg_authid r ON r.oid = d.objoid WHERE d.classoid = 'pg_authid'::regclass ORDER BY 1",
}
_MARIADB_TABLES = (
    "global_priv",
    "db",
    "tables_priv",
    "columns_priv",
    "procs_priv",
    "roles_mapping",
    "proxies_priv",
)


def snapshot(server: PostgresServer | MariaDBServer) -> Snapshot:
    """The server's whole account state, comparable with ``==``."""
    if isinstance(server, PostgresServer):
        with admin_postgres(server) as pg:
            return {name: pg.execute(query).fetchall() for name, query in _POSTGRES.items()}
    out: Snapshot = {}
    with admin_mariadb(server) as my, my.cursor() as cur:
        for table in _MARIADB_TABLES:
            cur.execute(f"SELECT * FROM mysql.`{table}`")  # noqa: S608 - constant names
            out[table] = sorted(tuple(str(v) for v in row) for row in cur.fetchall())
    return out


def changes(before: Snapshot, after: Snapshot) -> dict[str, tuple[list[Any], list[Any]]]:
    """What differs, per catalog: (rows gone, rows new)."""
    out = {}
    for name in before:
        gone = [r for r in before[name] if r not in after[name]]
        new = [r for r in after[name] if r not in before[name]]
        if gone or new:
            out[name] = (gone, new)
    return out
