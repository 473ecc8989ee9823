"""The packaging tier: the SAM template and the built artifacts (x86_64, built once a session)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SAM = ROOT / ".venv-sam" / "bin" / "sam"
FUNCTIONS = {
    "PostgresSingleUserFunction": ("postgres_single_user", "psycopg"),
    "MySQLSingleUserFunction": ("mysql_single_user", "pymysql"),
    "PostgresAlternatingUsersFunction": ("postgres_alternating_users", "psycopg"),
    "MySQLAlternatingUsersFunction": ("mysql_alternating_users", "pymysql"),
}


def sam_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update(SAM_CLI_TELEMETRY="0", AWS_DEFAULT_REGION="us-east-1", KEYTURN_SKIP_BOOTSTRAP="1")
    return env


def sam_build(arch: str, out: Path, **env: str) -> Path:
    """``scripts/sam-build ARCH --build-dir OUT``; fails the test with SAM's output if it fails.

    Offline (loopback only): the RDS CA bundle step is given a test CA, as an offline build
    would be given a local copy of AWS's bundle."""
    from keyturn_local.certs import make_ca

    out.parent.mkdir(parents=True, exist_ok=True)
    ca, _, _ = make_ca(out.parent, "stand-in-rds-ca")
    result = subprocess.run(
        [str(ROOT / "scripts" / "sam-build"), arch, "--build-dir", str(out)],
        cwd=ROOT,
        env=sam_env() | {"KEYTURN_RDS_CA_BUNDLE": str(ca)} | env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def build_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The x86_64 build, once a session."""
    return sam_build("x86_64", tmp_path_factory.mktemp("sam") / "build")


@pytest.fixture(scope="session")
def translated() -> dict[str, Any]:
    """template.yaml translated offline to plain CloudFormation by the SAM translator."""
    from cfnlint.decode import decode_str
    from samtranslator.translator.transform import transform

    template, matches = decode_str((ROOT / "template.yaml").read_text())
    assert not matches
    template = json.loads(json.dumps(template, default=str))
    # The translator wants code in S3, as `sam package` would leave it.
    template["Globals"]["Function"]["CodeUri"] = "s3://keyturn-artifacts/function.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    with pytest.MonkeyPatch.context() as patch:  # session fixtures run before aws_env
        patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        out: dict[str, Any] = transform(template, {}, NoManagedPolicies())
    return out
