"""Pools whose connections follow rotations: psycopg_pool (sync and async) and SQLAlchemy.

Both open every new connection through a :class:`RotationAwareConnector`, so a pool that grows or
replaces a connection during a rotation gets credentials that log in. When the connector sees
AWSCURRENT change, the pool retires its older connections gracefully: each is replaced when it is
next taken from the pool, and ones in use finish their work first (databases do not drop sessions
on a password change).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .cache import SecretCache
from .connect import (
    AsyncRotationAwareConnector,
    FallbackPolicy,
    RotationAwareConnector,
    psycopg_async_connector,
    psycopg_connector,
)


def psycopg_pool(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connect_kwargs: dict[str, Any] | None = None,
    **pool_kwargs: Any,
) -> tuple[Any, RotationAwareConnector[Any]]:
    """A ``psycopg_pool.ConnectionPool`` and its connector.

    ``connect_kwargs`` go to ``psycopg.connect`` (TLS settings); ``pool_kwargs`` to the pool
    (``min_size``, ``max_size``...; ``open`` defaults to False). A detected rotation calls
    ``pool.drain()``.
    """
    import psycopg
    from psycopg_pool import ConnectionPool

    holder: dict[str, RotationAwareConnector[Any]] = {}

    class RotatingConnection(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            return holder["connector"].connect()

    connector = psycopg_connector(
        cache,
        secret_id,
        policy=policy,
        connection_class=RotatingConnection,
        **(connect_kwargs or {}),
    )
    holder["connector"] = connector
    pool_kwargs.setdefault("check", ConnectionPool.check_connection)
    pool_kwargs.setdefault("open", False)  # open it with pool.open() or use it as a context
    pool: Any = ConnectionPool(connection_class=RotatingConnection, **pool_kwargs)
    connector.on_rotation.append(pool.drain)
    return pool, connector


async def psycopg_async_pool(
    cache: SecretCache,
    secret_id: str,
    *,
    policy: FallbackPolicy | None = None,
    connect_kwargs: dict[str, Any] | None = None,
    **pool_kwargs: Any,
) -> tuple[Any, AsyncRotationAwareConnector[Any]]:
    """A ``psycopg_pool.AsyncConnectionPool`` (not yet opened) and its connector."""
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    holder: dict[str, AsyncRotationAwareConnector[Any]] = {}

    class RotatingAsyncConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            return await holder["connector"].connect()

    connector = psycopg_async_connector(
        cache,
        secret_id,
        policy=policy,
        connection_class=RotatingAsyncConnection,
        **(connect_kwargs or {}),
    )
    holder["connector"] = connector
    pool_kwargs.setdefault("check", AsyncConnectionPool.check_connection)
    pool_kwargs.setdefault("open", False)
    pool: Any = AsyncConnectionPool(connection_class=RotatingAsyncConnection, **pool_kwargs)
    loop = asyncio.get_running_loop()

    def drain() -> None:
        # Hooks may run in the worker thread that fetched the secret: hand over to the loop.
        asyncio.run_coroutine_threadsafe(pool.drain(), loop)

    connector.on_rotation.append(drain)
    return pool, connector


def sqlalchemy_engine(
    connector: RotationAwareConnector[Any], url: str, **engine_kwargs: Any
) -> Any:
    """An SQLAlchemy engine whose connections come from ``connector``.

    ``url`` names only the dialect and driver (``"postgresql+psycopg://"``,
    ``"mysql+pymysql://"``). Each connection is tagged with the rotation generation it was opened
    in; after a rotation, an older connection is closed and replaced at its next checkout (the
    pool's own invalidation), while connections in use finish their work undisturbed.
    """
    from sqlalchemy import create_engine, event
    from sqlalchemy import exc as sa_exc

    engine_kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, creator=connector.connect, **engine_kwargs)
    generation = [0]

    @event.listens_for(engine, "connect")
    def _tag(dbapi_connection: Any, record: Any) -> None:
        record.info["keyturn_generation"] = generation[0]

    @event.listens_for(engine, "checkout")
    def _retire(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("keyturn_generation") != generation[0]:
            raise sa_exc.DisconnectionError("the credentials rotated: reconnecting")

    def _next_generation() -> None:
        generation[0] += 1

    connector.on_rotation.append(_next_generation)
    return engine
