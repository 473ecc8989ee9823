"""Facts of Secrets Manager's rotation protocol and of Keyturn's strategies, in one place for the
rotation functions, the client library and the ``keyturn`` command (standard library only)."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

from .errors import SecretFormatError
from .secret import EngineFamily

AWSCURRENT = "AWSCURRENT"
AWSPENDING = "AWSPENDING"
AWSPREVIOUS = "AWSPREVIOUS"
ROTATION_STAGES = (AWSCURRENT, AWSPENDING, AWSPREVIOUS)

type VersionStages = Mapping[str, Sequence[str]]
"""DescribeSecret's ``VersionIdsToStages``: a version id's staging labels."""


def version_with(versions: VersionStages, stage: str) -> str | None:
    """The version id holding ``stage``, if any.

    >>> version_with({"v1": ["AWSPREVIOUS"], "v2": ["AWSCURRENT"]}, AWSCURRENT)
    'v2'
    """
    return next((version for version, stages in versions.items() if stage in stages), None)


def unfinished_rotation(versions: VersionStages) -> str | None:
    """The version a rotation in progress (or stuck) left AWSPENDING on: one that is not also
    AWSCURRENT. AWS counts both "AWSPENDING on AWSCURRENT" and "no AWSPENDING" as finished.

    >>> unfinished_rotation({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]})
    'v2'
    >>> unfinished_rotation({"v1": ["AWSCURRENT", "AWSPENDING"]}) is None
    True
    """
    for version_id, stages in versions.items():
        if AWSPENDING in stages and AWSCURRENT not in stages:
            return version_id
    return None


class StrategyName(enum.StrEnum):
    """The one vocabulary for strategies: handler names, the CLI's --strategy, logs, metrics."""

    SINGLE_USER = "single_user"
    ALTERNATING_USERS = "alternating_users"


FUNCTION_PREFIX: Mapping[EngineFamily, str] = {
    EngineFamily.POSTGRESQL: "postgres",
    EngineFamily.MYSQL: "mysql",
}


def function_name(family: EngineFamily, strategy: StrategyName | str) -> str:
    """The handler (and the template's function) for a family and strategy.

    >>> function_name(EngineFamily.MYSQL, StrategyName.ALTERNATING_USERS)
    'mysql_alternating_users'
    """
    return f"{FUNCTION_PREFIX[family]}_{StrategyName(strategy)}"


CLONE_SUFFIX = "_clone"


def user_pair(username: str) -> tuple[str, str]:
    """``(base, clone)`` for either user of an alternating pair.

    >>> user_pair("app"), user_pair("app_clone")
    (('app', 'app_clone'), ('app', 'app_clone'))
    """
    base = username.removesuffix(CLONE_SUFFIX)
    if not base:
        raise SecretFormatError("the username is only the clone suffix")
    return base, base + CLONE_SUFFIX


def alternate(username: str) -> str:
    """The other user of the pair.

    >>> alternate("app"), alternate("app_clone")
    ('app_clone', 'app')
    """
    base, clone = user_pair(username)
    return base if username == clone else clone


__all__ = [
    "AWSCURRENT",
    "AWSPENDING",
    "AWSPREVIOUS",
    "CLONE_SUFFIX",
    "FUNCTION_PREFIX",
    "ROTATION_STAGES",
    "StrategyName",
    "VersionStages",
    "alternate",
    "function_name",
    "unfinished_rotation",
    "user_pair",
    "version_with",
]
