"""Lambda entry points: one per engine family and strategy, all on one code base.

``Handler: rotation_lambdas.handlers.postgres_single_user`` in the template. The engine is built on
the first invocation and reused while the execution environment stays warm. Only the driver of the
function's own engine family is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import boto3

from .adapters.base import DatabaseAdapter
from .engine import RotationEngine
from .secret import EngineFamily
from .secrets_store import SecretsStore
from .settings import ConnectSettings, PasswordPolicy
from .strategies.single_user import SingleUserStrategy

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

Handler = Callable[[Mapping[str, Any], Any], None]


def make_adapter(family: EngineFamily, settings: ConnectSettings) -> DatabaseAdapter[Any]:
    """The adapter for ``family``; imports that family's driver only."""
    if family is EngineFamily.POSTGRESQL:
        from .adapters.postgres import PostgresAdapter

        return PostgresAdapter(settings)
    from .adapters.mysql import MySQLAdapter

    return MySQLAdapter(settings)


def build_engine(
    family: EngineFamily,
    *,
    client: SecretsManagerClient | None = None,
    env: Mapping[str, str] | None = None,
) -> RotationEngine:
    """A single-user rotation engine for ``family``, configured from ``env`` (default: os.environ).

    The Secrets Manager endpoint follows boto3's own settings, including
    ``AWS_ENDPOINT_URL_SECRETS_MANAGER`` for private VPC endpoints.
    """
    adapter = make_adapter(family, ConnectSettings.from_env(env))
    store = SecretsStore(client if client is not None else boto3.client("secretsmanager"))
    return RotationEngine(SingleUserStrategy(adapter), store, policy=PasswordPolicy.from_env(env))


def _handler(family: EngineFamily) -> Handler:
    engine: RotationEngine | None = None

    def handler(event: Mapping[str, Any], context: Any) -> None:
        nonlocal engine
        if engine is None:
            engine = build_engine(family)
        engine.run(event)

    handler.__name__ = f"{family.value}_single_user"
    handler.__doc__ = f"Lambda handler: single-user rotation for the {family.value} family."
    return handler


postgres_single_user = _handler(EngineFamily.POSTGRESQL)
mysql_single_user = _handler(EngineFamily.MYSQL)

HANDLERS: Mapping[str, Handler] = {
    "postgres_single_user": postgres_single_user,
    "mysql_single_user": mysql_single_user,
}
