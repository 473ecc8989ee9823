"""Read-only checks for ``keyturn preflight`` on the MySQL family.

MySQL's account statements commit implicitly, so nothing can be dry-run and rolled back as on
PostgreSQL: these checks read the server's state and the grants instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from .mysql_grants import GrantObject, Privilege, UserGrants

_GLOBAL = GrantObject("", "*", "*")
_ALL = "ALL PRIVILEGES"


def _holds(own: UserGrants, name: str, obj: GrantObject) -> bool:
    """Whether ``own`` has ``name`` on ``obj`` directly, on its database, or globally."""
    scopes = {_GLOBAL, GrantObject("", obj.database, "*"), obj}
    return any(p.obj in scopes and not p.column and p.name in (name, _ALL) for p in own.privileges)


def administration_gaps(own: UserGrants, base: UserGrants, base_name: str) -> list[str]:
    """What the superuser (``own``) lacks to create the clone of ``base`` and grant it the same.

    >>> from .mysql_grants import parse_show_grants
    >>> admin = parse_show_grants(
    ...     ["GRANT CREATE USER, PROCESS ON *.* TO `a`@`%` WITH GRANT OPTION"])
    >>> app = parse_show_grants(["GRANT SELECT, INSERT ON `shop`.* TO `app`@`%`"])
    >>> administration_gaps(admin, app, "app")
    ["the superuser lacks INSERT ON `shop`.* (to grant it to 'app_clone')", \
"the superuser lacks SELECT ON `shop`.* (to grant it to 'app_clone')"]
    """
    gaps = []
    if not _holds(own, "CREATE USER", _GLOBAL):
        gaps.append("the superuser lacks the global CREATE USER privilege")
    if not _holds(own, "GRANT OPTION", _GLOBAL):
        gaps.append("the superuser lacks the global GRANT OPTION (WITH GRANT OPTION)")
    if not _holds(own, "PROCESS", _GLOBAL):
        gaps.append(
            "the superuser lacks the global PROCESS privilege (to see which account holds the "
            "lock that proves control of the rotated account)"
        )
    for privilege in _grantable(base.privileges):
        if not _holds(own, privilege.name, privilege.obj):
            gaps.append(
                f"the superuser lacks {privilege.describe()} (to grant it to '{base_name}_clone')"
            )
    held = {(r.role, r.role_host) for r in own.roles if r.admin}
    for role in sorted(base.roles):
        if (role.role, role.role_host) not in held:
            gaps.append(
                f"the superuser does not hold role '{role.role}' WITH ADMIN OPTION "
                f"(to grant it to '{base_name}_clone')"
            )
    return gaps


def _grantable(privileges: Iterable[Privilege]) -> list[Privilege]:
    return sorted(p for p in privileges if p.name not in ("USAGE", "GRANT OPTION"))


def plugin_problem(show_grants: Iterable[str]) -> str | None:
    """MariaDB names a non-password authentication plugin in SHOW GRANTS; we set a password hash.

    >>> plugin_problem(["GRANT USAGE ON *.* TO `a`@`%` IDENTIFIED VIA ed25519 USING 'x'"])
    "the account authenticates with 'ed25519'; single-user rotation sets a mysql_native_password \
hash: use a mysql_native_password account"
    >>> plugin_problem(["GRANT USAGE ON *.* TO `a`@`%` IDENTIFIED BY PASSWORD '*AB'"]) is None
    True
    """
    for line in show_grants:
        upper = line.upper()
        if " IDENTIFIED VIA " in upper:
            plugin = line[upper.index(" IDENTIFIED VIA ") + len(" IDENTIFIED VIA ") :].split()[0]
            if plugin.lower() != "mysql_native_password":
                return (
                    f"the account authenticates with '{plugin}'; single-user rotation sets a "
                    "mysql_native_password hash: use a mysql_native_password account"
                )
    return None
