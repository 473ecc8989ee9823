"""Cache hit latency: client_lib.SecretCache against the named anchors, same secret, same run.

    .venv/bin/python bench/cache_hits.py

Anchors: aws-secretsmanager-caching ``SecretCache.get_secret_string`` and aws-lambda-powertools
``SecretsProvider.get`` (max_age long enough that every call is a hit). The secret lives in
in-process moto; after one warm-up call no call leaves the process. Prints the best of 5 repeats
of N calls, in microseconds per hit, and the ratios the issue sets as targets.
"""

from __future__ import annotations

import json
import os
import timeit
from collections.abc import Callable

import boto3
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_secretsmanager_caching import SecretCache as AwsSecretCache
from aws_secretsmanager_caching import SecretCacheConfig
from moto import mock_aws

from client_lib import SecretCache

NAME = "bench/db"


def per_hit_us(call: Callable[[], object], number: int) -> float:
    call()
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        client = boto3.client("secretsmanager")
        secret = {"engine": "postgres", "host": "db", "username": "app", "password": "x" * 32}
        client.create_secret(Name=NAME, SecretString=json.dumps(secret))

        ours = SecretCache(client, ttl=3600)
        aws = AwsSecretCache(config=SecretCacheConfig(), client=client)
        powertools = SecretsProvider(boto3_client=client)

        keyturn_us = per_hit_us(lambda: ours.get(NAME), 200_000)
        keyturn_str_us = per_hit_us(lambda: ours.get_string(NAME), 200_000)
        aws_us = per_hit_us(lambda: aws.get_secret_string(NAME), 20_000)
        pt_us = per_hit_us(lambda: powertools.get(NAME, max_age=3600), 100_000)

    print(f"client_lib SecretCache.get            {keyturn_us:8.3f} us/hit")
    print(f"client_lib SecretCache.get_string     {keyturn_str_us:8.3f} us/hit")
    print(f"anchor aws-secretsmanager-caching     {aws_us:8.3f} us/hit")
    print(f"anchor powertools SecretsProvider.get {pt_us:8.3f} us/hit")
    print(f"ratio vs aws-secretsmanager-caching   {aws_us / keyturn_str_us:8.1f}x  (target >= 20x)")
    print(f"ratio vs powertools                   {pt_us / keyturn_str_us:8.1f}x  (target >= 2x)")
    print(f"target <= 1 us/hit                    {'met' if keyturn_str_us <= 1 else 'NOT met'}")


if __name__ == "__main__":
    main()
