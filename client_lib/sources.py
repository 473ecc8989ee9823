"""Where the cache gets values from: a boto3 Secrets Manager client, or anything shaped like it.

:class:`SecretSource` is the one method the cache needs. A source that also has
``describe_secret`` (boto3's client) lets the cache ask which version each stage points at before
fetching, so an unchanged version costs no GetSecretValue. One with ``refresh_secret_now``
(:class:`AwsCachingSource`) is refreshed on demand when a login fails.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from typing import Any, Protocol

from keyturn_core.protocol import AWSCURRENT

_VERSION_KEY = secrets.token_bytes(32)


class SecretSource(Protocol):
    """What :class:`~client_lib.SecretCache` calls to fetch a secret (boto3's signature)."""

    def get_secret_value(
        self, *, SecretId: str, VersionId: str = ..., VersionStage: str = ...
    ) -> Mapping[str, object]:
        """``VersionStage`` or ``VersionId``; returns ``VersionId``, ``VersionStages`` and
        ``SecretString`` (or ``SecretBinary``)."""
        ...


class AwsCachingSource:
    """Serve values from an application's existing ``aws_secretsmanager_caching.SecretCache``.

    Usage::

        from aws_secretsmanager_caching import SecretCache as AwsCache
        cache = SecretCache(AwsCachingSource(AwsCache()))

    That cache keeps its own refresh schedule and does not expose version ids, so a version is
    identified by a keyed digest of its value (HMAC-SHA256 with a random key of this process).
    When a login fails, Keyturn asks it to refresh at once (its ``refresh_secret_now``, which
    sleeps 2.5-5 s by its own design before refreshing: the connector's time budget allows for
    it).
    """

    def __init__(self, aws_cache: Any) -> None:
        self.aws_cache = aws_cache

    def get_secret_value(
        self, *, SecretId: str, VersionId: str = "", VersionStage: str = AWSCURRENT
    ) -> Mapping[str, object]:
        if VersionId:
            raise ValueError("aws-secretsmanager-caching serves stages, not version ids")
        secret_id, stage = SecretId, VersionStage
        text = self.aws_cache.get_secret_string(secret_id, stage)
        binary = None if text is not None else self.aws_cache.get_secret_binary(secret_id, stage)
        if text is None and binary is None:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": f"no {stage}"}},
                "GetSecretValue",
            )
        material = text.encode() if text is not None else bytes(binary or b"")
        # Keyed by a random per-process key: a plain digest of the value, logged with a
        # refusal, would let whoever reads the logs test password guesses offline.
        digest = hmac.new(_VERSION_KEY, material, hashlib.sha256).hexdigest()[:32]
        return {
            "VersionId": f"hmac:{digest}",
            "VersionStages": [stage],
            "SecretString": text,
            "SecretBinary": binary,
        }

    def refresh_secret_now(self, secret_id: str) -> bool:
        """Ask the wrapped cache to refresh ``secret_id`` now (what a failed login calls for)."""
        return bool(self.aws_cache.refresh_secret_now(secret_id))


__all__ = ["AwsCachingSource", "SecretSource"]
