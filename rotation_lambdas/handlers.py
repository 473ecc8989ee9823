"""Lambda entry points: one per engine family and strategy, all on one code base.

``Handler: rotation_lambdas.handlers.postgres_single_user`` (or ``mysql_single_user``,
``postgres_alternating_users``, ``mysql_alternating_users``) in the template. The engine is built on
the first invocation and reused while the execution environment stays warm. Only the driver of the
function's own engine family is imported.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3

from keyturn_core.protocol import StrategyName, function_name

from .adapters.base import DatabaseAdapter
from .build_target import check_build_target
from .engine import RotationEngine
from .errors import ConfigurationError
from .secret import EngineFamily
from .secrets_store import SecretsStore
from .settings import (
    ENV_SUPERUSER_SECRET_ARN,
    ConnectSettings,
    PasswordPolicy,
    rds_managed_superusers,
)
from .strategies.alternating_users import AlternatingUsersStrategy
from .strategies.base import Strategy
from .strategies.single_user import SingleUserStrategy

if TYPE_CHECKING:
    from mypy_boto3_rds import RDSClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

Handler = Callable[[Mapping[str, Any], Any], None]


def make_adapter(family: EngineFamily, settings: ConnectSettings) -> DatabaseAdapter[Any]:
    """The adapter for ``family``; imports that family's driver only."""
    if family is EngineFamily.POSTGRESQL:
        from .adapters.postgres import PostgresAdapter

        return PostgresAdapter(settings)
    from .adapters.mysql import MySQLAdapter

    return MySQLAdapter(settings)


# Loaded on another architecture or Python than it was built for, the artifact says so here,
# at the function's init, rather than failing later on a compiled driver.
check_build_target(Path(__file__).resolve().parents[1])

SINGLE_USER = StrategyName.SINGLE_USER
ALTERNATING_USERS = StrategyName.ALTERNATING_USERS
STRATEGIES = tuple(StrategyName)


def build_engine(
    family: EngineFamily,
    strategy: str = SINGLE_USER,
    *,
    client: SecretsManagerClient | None = None,
    env: Mapping[str, str] | None = None,
    rds_client: RDSClient | None = None,
) -> RotationEngine:
    """A rotation engine for ``family`` and ``strategy``, configured from ``env`` (os.environ).

    The Secrets Manager endpoint follows boto3's own settings, including
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` for private VPC endpoints (and RDS's:
    ``AWS_ENDPOINT_URL_RDS``, used only for RDS-managed superuser secrets).
    """
    environ = os.environ if env is None else env
    adapter = make_adapter(family, ConnectSettings.from_env(environ))
    chosen: Strategy[Any]
    if strategy == SINGLE_USER:
        chosen = SingleUserStrategy(adapter)
    elif strategy == ALTERNATING_USERS:
        chosen = AlternatingUsersStrategy(adapter, environ.get(ENV_SUPERUSER_SECRET_ARN))
    else:
        raise ConfigurationError(f"unknown strategy; expected one of {', '.join(STRATEGIES)}")
    store = SecretsStore(client if client is not None else boto3.client("secretsmanager"))
    rds = None
    if rds_managed_superusers(environ):
        from .rds import RdsLocator  # only for functions that ask RDS

        rds = RdsLocator(rds_client)
    return RotationEngine(chosen, store, policy=PasswordPolicy.from_env(environ), rds=rds)


def _handler(family: EngineFamily, strategy: str) -> Handler:
    engine: RotationEngine | None = None

    def handler(event: Mapping[str, Any], context: Any) -> None:
        nonlocal engine
        if engine is None:
            engine = build_engine(family, strategy)
        engine.run(event)

    handler.__name__ = function_name(family, strategy)
    handler.__doc__ = f"Lambda handler: {strategy.replace('_', ' ')} rotation, {family.value}."
    return handler


postgres_single_user = _handler(EngineFamily.POSTGRESQL, SINGLE_USER)
mysql_single_user = _handler(EngineFamily.MYSQL, SINGLE_USER)
postgres_alternating_users = _handler(EngineFamily.POSTGRESQL, ALTERNATING_USERS)
mysql_alternating_users = _handler(EngineFamily.MYSQL, ALTERNATING_USERS)

HANDLERS: Mapping[str, Handler] = {
    "postgres_single_user": postgres_single_user,
    "mysql_single_user": mysql_single_user,
    "postgres_alternating_users": postgres_alternating_users,
    "mysql_alternating_users": mysql_alternating_users,
}
