"""Where the cache gets values from, besides a boto3 Secrets Manager client."""

from __future__ import annotations

import hashlib
from typing import Any


class AwsCachingSource:
    """Serve values from an application's existing ``aws_secretsmanager_caching.SecretCache``.

    Usage::

        from aws_secretsmanager_caching import SecretCache as AwsCache
        cache = SecretCache(AwsCachingSource(AwsCache()))

    That cache keeps its own refresh schedule and does not expose version ids, so a version is
    identified by a digest of its value, and DescribeSecret is not used.
    """

    def __init__(self, aws_cache: Any) -> None:
        self.aws_cache = aws_cache

    def get_secret_value(self, SecretId: str, VersionStage: str) -> dict[str, Any]:
        text = self.aws_cache.get_secret_string(SecretId, VersionStage)
        binary = (
            None if text is not None else self.aws_cache.get_secret_binary(SecretId, VersionStage)
        )
        material = text.encode() if text is not None else bytes(binary or b"")
        digest = hashlib.sha256(material).hexdigest()[:32]
        return {
            "VersionId": f"sha256:{digest}",
            "VersionStages": [VersionStage],
            "SecretString": text,
            "SecretBinary": binary,
        }
