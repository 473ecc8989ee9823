"""verify-full through a DNS alias, resolved for real: the functions' adapters run in a process
with its own /etc/hosts (a private mount namespace), where ``db.internal.example`` is an alias of
``server.db.keyturn.test`` (a name the test CA's server certificates carry), as a CNAME of an RDS
endpoint would be, with ``.db.keyturn.test`` as the allowed suffix in place of RDS's domains. libpq
and PyMySQL resolve through the system's resolver, as on Lambda."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from keyturn_local.servers import TEST_DNS_NAME, TEST_DNS_SUFFIX, MariaDBServer, PostgresServer
from tests.support.leaks import LeakWatch

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
HOSTS = (
    "127.0.0.1 localhost\n"
    f"127.0.0.1 {TEST_DNS_NAME} db.internal.example\n"
    "127.0.0.1 elsewhere.example db.hijacked.example\n"  # no name under the suffix
    "127.0.0.1 evil.db.keyturn.test db.evil.example\n"  # under the suffix, not in the certificate
    "::1 localhost ip6-localhost\n"
)
PROBE = """
import json, sys
from rotation_lambdas import ConnectSettings, DatabaseSecret, RotationError
from rotation_lambdas.handlers import make_adapter
cases = json.loads(sys.stdin.read())
results = []
for case in cases:
    settings = ConnectSettings(
        ca_bundle=case["ca"],
        verify_canonical_name=case["canonical"],
        canonical_name_suffixes=(case["suffix"],),
    )
    secret = DatabaseSecret.from_mapping(case["secret"])
    try:
        with make_adapter(secret.family, settings).connect(secret):
            results.append("connected")
    except RotationError as exc:
        results.append(type(exc).__name__)
print(json.dumps(results))
"""


def in_private_hosts(tmp_path: Path, cases: list[dict[str, Any]]) -> list[str]:
    hosts = tmp_path / "hosts"
    hosts.write_text(HOSTS)
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux, essential on Debian) is missing"
    result = subprocess.run(
        [
            unshare,
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            'mount --bind "$0" /etc/hosts && exec "$1" -c "$2"',
            str(hosts),
            sys.executable,
            PROBE,
        ],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    answer: list[str] = json.loads(result.stdout)
    return answer


def test_an_alias_verifies_only_with_the_setting_and_only_against_its_canonical_name(
    postgres_server: PostgresServer,
    mariadb_server: MariaDBServer,
    leak_watch: LeakWatch,
    tmp_path: Path,
) -> None:
    cases = []
    expected = []
    for engine, server in (("postgres", postgres_server), ("mariadb", mariadb_server)):
        assert server.tls_files is not None
        leak_watch.add(server.admin.password)
        for host, canonical, outcome in (
            ("db.internal.example", False, "TlsError"),  # the alias is not in the certificate
            ("db.internal.example", True, "connected"),  # the name it is an alias of is
            ("db.hijacked.example", True, "TlsError"),  # no name under the suffix: as written
            ("db.evil.example", True, "TlsError"),  # under the suffix, the certificate lacks it
            (TEST_DNS_NAME, True, "connected"),  # already under the suffix: unchanged
            ("localhost", True, "connected"),  # not an alias of one: verified as written
        ):
            secret = {
                "engine": engine,
                "host": host,
                "port": server.port,
                "username": server.admin.user,
                "password": server.admin.password,
            }
            cases.append(
                {
                    "ca": str(server.tls_files.ca_cert),
                    "canonical": canonical,
                    "suffix": TEST_DNS_SUFFIX,
                    "secret": secret,
                }
            )
            expected.append(f"{engine} {host} canonical={canonical}: {outcome}")
    results = in_private_hosts(tmp_path, cases)
    got = [e.rsplit(": ", 1)[0] + f": {r}" for e, r in zip(expected, results, strict=True)]
    assert got == expected
