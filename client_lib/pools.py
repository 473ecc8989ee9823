"""Pools whose connections follow rotations: psycopg_pool (sync and asyncio) and SQLAlchemy.

Each opens every new connection through a rotation-aware connector, so a pool that grows or
replaces a connection during a rotation gets credentials that log in; what the pool or engine is
configured with (psycopg_pool's ``conninfo`` and ``kwargs``, SQLAlchemy's URL and
``connect_args``) applies to every connection, and TLS from the secret still applies unless
they override it. When the connector sees AWSCURRENT change, the pool retires its older
connections gracefully: each is replaced when next taken, and ones in use finish first
(databases do not drop sessions on a password change).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .cache import SecretCache
from .connect import AsyncRotationAwareConnector, FallbackPolicy, RotationAwareConnector
from .connectors import psycopg_async_connector, psycopg_connector
from .errors import ClientConfigurationError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow
    from psycopg_pool import AsyncConnectionPool, ConnectionPool
    from sqlalchemy import Engine
    from sqlalchemy.ext.asyncio import AsyncEngine

type PoolKwargs = dict[str, Any] | Callable[[], dict[str, Any]]


def psycopg_pool(
    cache: SecretCache,
    secret_id: str,
    conninfo: str | Callable[[], str] = "",
    *,
    kwargs: PoolKwargs | None = None,
    policy: FallbackPolicy | None = None,
    **pool_kwargs: Any,
) -> tuple[
    ConnectionPool[psycopg.Connection[TupleRow]],
    RotationAwareConnector[psycopg.Connection[TupleRow]],
]:
    """A ``psycopg_pool.ConnectionPool`` and its connector.

    ``conninfo`` and ``kwargs`` are psycopg_pool's own (values or callables): host, ``sslmode``,
    ``autocommit``, ``prepare_threshold=None`` behind PgBouncer..., never the user or password.
    ``pool_kwargs`` go to the pool (``min_size``, ``max_size``...; ``open`` defaults to False).
    A detected rotation calls ``pool.drain()``.
    """
    import psycopg
    from psycopg_pool import ConnectionPool

    holder: dict[str, RotationAwareConnector[Any]] = {}

    class RotatingConnection(psycopg.Connection[Any]):
        @classmethod
        def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            return holder["connector"].connect(conninfo=conninfo, **kwargs)

    connector = psycopg_connector(
        cache, secret_id, policy=policy, connection_class=RotatingConnection
    )
    holder["connector"] = connector
    pool_kwargs.setdefault("check", ConnectionPool.check_connection)
    pool_kwargs.setdefault("open", False)  # open it with pool.open() or use it as a context
    pool: ConnectionPool[psycopg.Connection[TupleRow]] = ConnectionPool(
        conninfo, connection_class=RotatingConnection, kwargs=kwargs, **pool_kwargs
    )
    connector.on_rotation.append(pool.drain)
    return pool, connector


async def psycopg_async_pool(
    cache: SecretCache,
    secret_id: str,
    conninfo: str | Callable[[], str] = "",
    *,
    kwargs: PoolKwargs | None = None,
    policy: FallbackPolicy | None = None,
    **pool_kwargs: Any,
) -> tuple[
    AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]],
    AsyncRotationAwareConnector[psycopg.AsyncConnection[TupleRow]],
]:
    """A ``psycopg_pool.AsyncConnectionPool`` (not yet opened) and its connector."""
    import psycopg
    from psycopg_pool import AsyncConnectionPool

    holder: dict[str, AsyncRotationAwareConnector[Any]] = {}

    class RotatingAsyncConnection(psycopg.AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:
            return await holder["connector"].connect(conninfo=conninfo, **kwargs)

    connector = psycopg_async_connector(
        cache, secret_id, policy=policy, connection_class=RotatingAsyncConnection
    )
    holder["connector"] = connector
    pool_kwargs.setdefault("check", AsyncConnectionPool.check_connection)
    pool_kwargs.setdefault("open", False)
    pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]] = AsyncConnectionPool(
        conninfo, connection_class=RotatingAsyncConnection, kwargs=kwargs, **pool_kwargs
    )
    loop = asyncio.get_running_loop()

    def drain() -> None:
        # Hooks may run in the worker thread that fetched the secret: hand over to the loop.
        asyncio.run_coroutine_threadsafe(pool.drain(), loop)

    connector.on_rotation.append(drain)
    return pool, connector


_CREDENTIAL_PARAMS = ("user", "password", "passwd", "username")


def _connect_params(cparams: dict[str, Any]) -> dict[str, Any]:
    """The dialect's arguments (URL and ``connect_args``), which must leave the user and
    password to the secret."""
    given = [key for key in _CREDENTIAL_PARAMS if cparams.get(key) is not None]
    if given:
        raise ClientConfigurationError(
            f"{', '.join(given)} come from the secret: do not pass them in connect_args"
        )
    return {key: value for key, value in cparams.items() if key not in _CREDENTIAL_PARAMS}


def _check(url: str, engine_kwargs: dict[str, Any]) -> None:
    """Refuse credentials in the URL or ``connect_args`` when the engine is made, not later."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.username or parsed.password:
        raise ClientConfigurationError(
            "the URL must not carry a user or password: they come from the secret"
        )
    _connect_params(dict(engine_kwargs.get("connect_args") or {}))


def sqlalchemy_engine(
    connector: RotationAwareConnector[Any], url: str, **engine_kwargs: Any
) -> Engine:
    """An SQLAlchemy engine whose connections come from ``connector``.

    ``url`` names the dialect and driver (``"postgresql+psycopg://"``, ``"mysql+pymysql://"``)
    and may name the host, port and database; it and ``connect_args`` reach the driver through
    SQLAlchemy's ``do_connect`` event, so the dialect's own arguments apply. After a rotation, an
    older connection is replaced at its next checkout, while connections in use finish undisturbed.
    """
    from sqlalchemy import create_engine, event

    _check(url, engine_kwargs)
    engine_kwargs.setdefault("pool_pre_ping", True)
    engine = create_engine(url, **engine_kwargs)

    @event.listens_for(engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        return connector.connect(**_connect_params(cparams))

    _retire_after_rotation(engine, connector)
    return engine


def sqlalchemy_async_engine(
    connector: AsyncRotationAwareConnector[Any], url: str, **engine_kwargs: Any
) -> AsyncEngine:
    """An asyncio SQLAlchemy engine (``"postgresql+psycopg://"``) whose connections come from
    ``connector``; the URL and ``connect_args`` apply as for :func:`sqlalchemy_engine`."""
    from sqlalchemy import event
    from sqlalchemy.ext.asyncio import create_async_engine

    _check(url, engine_kwargs)
    engine_kwargs.setdefault("pool_pre_ping", True)
    engine = create_async_engine(url, **engine_kwargs)

    @event.listens_for(engine.sync_engine, "do_connect")
    def _connect(dialect: Any, record: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        params = _connect_params(cparams)
        cparams.clear()

        def creator(*args: Any, **kwargs: Any) -> Any:
            return connector.connect(**params)

        # The dialect awaits this creator instead of AsyncConnection.connect.
        cparams["async_creator_fn"] = creator

    _retire_after_rotation(engine.sync_engine, connector)
    return engine


def _retire_after_rotation(
    engine: Engine, connector: RotationAwareConnector[Any] | AsyncRotationAwareConnector[Any]
) -> None:
    """Tag connections with the rotation generation they were opened in; replace older ones at
    their next checkout (the pool's own invalidation)."""
    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

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


__all__ = ["psycopg_async_pool", "psycopg_pool", "sqlalchemy_async_engine", "sqlalchemy_engine"]
