"""What the build records about its target, and what the artifact does with it."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from rotation_lambdas.build_target import BUILD_FILE, check_build_target
from rotation_lambdas.errors import ConfigurationError
from rotation_lambdas.settings import ConnectSettings

ROOT = Path(__file__).resolve().parents[2]


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "sam" / "build" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def built(tmp_path: Path, arch: str, python: str) -> Path:
    (tmp_path / BUILD_FILE).write_text(json.dumps({"architecture": arch, "python": python}))
    return tmp_path


def test_an_artifact_on_its_own_target_loads(tmp_path: Path) -> None:
    check_build_target(built(tmp_path, "arm64", "3.12"), "aarch64", (3, 12))
    check_build_target(built(tmp_path, "x86_64", "3.13"), "x86_64", (3, 13))
    check_build_target(tmp_path / "checkout", "x86_64", (3, 12))  # no build file: a checkout


@pytest.mark.parametrize(
    ("arch", "python", "machine", "running"),
    [
        ("arm64", "3.12", "x86_64", (3, 12)),
        ("x86_64", "3.12", "aarch64", (3, 12)),
        ("x86_64", "3.13", "x86_64", (3, 12)),
    ],
)
def test_an_artifact_on_another_target_names_the_build_command(
    tmp_path: Path, arch: str, python: str, machine: str, running: tuple[int, int]
) -> None:
    with pytest.raises(ConfigurationError) as info:
        check_build_target(built(tmp_path, arch, python), machine, running)
    message = str(info.value)
    assert f"built for {arch} with Python {python}" in message
    assert "scripts/sam-build" in message
    assert f"Runtime=python{python}" in message


def test_an_unreadable_build_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / BUILD_FILE).write_text("{not json")
    with pytest.raises(ConfigurationError, match="unreadable"):
        check_build_target(tmp_path, "x86_64", (3, 12))


BUILT_TEMPLATE = """\
AWSTemplateFormatVersion: '2010-09-09'
Parameters:
  Runtime:
    Type: String
    Default: python3.12
    AllowedValues:
    - python3.12
    - python3.13
    Description: Lambda runtime.
  Architecture:
    Type: String
    Default: x86_64
    AllowedValues:
    - x86_64
    - arm64
  FunctionTimeout:
    Type: Number
    Default: 30
Resources:
  Thing:
    Properties:
      Default: untouched
"""


def test_the_built_template_deploys_what_was_built() -> None:
    record = load("record_target").record
    out = record(BUILT_TEMPLATE, {"Architecture": "arm64", "Runtime": "python3.13"})
    assert "    Default: arm64\n    AllowedValues: [arm64]\n" in out
    assert "    Default: python3.13\n    AllowedValues: [python3.13]\n" in out
    assert "    Default: 30\n" in out
    assert "      Default: untouched\n" in out
    assert "- x86_64" not in out
    assert "- python3.12" not in out


def test_a_built_template_without_the_parameters_is_refused() -> None:
    record = load("record_target").record
    with pytest.raises(SystemExit, match="no default"):
        record("Parameters:\n  Other:\n    Default: 1\n", {"Architecture": "arm64"})


def test_the_ca_bundle_setting_is_relative_to_the_artifact_or_the_system_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("pem")
    env = {"KEYTURN_TLS_CA_BUNDLE": "system"}
    assert ConnectSettings.from_env(env).ca_bundle is None
    assert ConnectSettings.from_env({"KEYTURN_TLS_CA_BUNDLE": str(bundle)}).ca_bundle == str(bundle)
    monkeypatch.chdir(tmp_path)  # relative: from the working directory first (the CLI's) ...
    assert ConnectSettings.from_env({"KEYTURN_TLS_CA_BUNDLE": "ca.pem"}).ca_bundle == str(bundle)
    inside = ConnectSettings.from_env({"KEYTURN_TLS_CA_BUNDLE": "pyproject.toml"}).ca_bundle
    assert inside == str(ROOT / "pyproject.toml")  # ... else from the artifact's root
    with pytest.raises(
        ConfigurationError, match=r"rds-ca/global-bundle\.pem, which does not exist"
    ):
        ConnectSettings.from_env({"KEYTURN_TLS_CA_BUNDLE": "rds-ca/global-bundle.pem"})


def test_the_rds_bundle_step_refuses_a_file_without_ca_certificates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = load("rds_ca_bundle")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    monkeypatch.setenv(step.ENV_OVERRIDE, str(junk))
    with pytest.raises(ValueError, match="no PEM certificate"):
        step.fetch(tmp_path / "out" / "bundle.pem")
    assert not (tmp_path / "out" / "bundle.pem").exists()


def test_one_definition_of_a_rotation_that_did_not_finish() -> None:
    """Used by the local driver, keyturn preflight and keyturn status alike."""
    from datetime import UTC, datetime

    from keyturn_cli.status import STUCK, assess
    from rotation_lambdas.stages import unfinished_rotation
    from rotation_lambdas.strategies import StrategyName

    cases = {
        "finished, label left on AWSCURRENT": ({"v1": ["AWSCURRENT", "AWSPENDING"]}, None),
        "finished, label removed": ({"v1": ["AWSCURRENT"], "v0": ["AWSPREVIOUS"]}, None),
        "in progress or stuck": ({"v1": ["AWSCURRENT"], "v2": ["AWSPENDING"]}, "v2"),
    }
    now = datetime(2026, 11, 23, tzinfo=UTC)
    for name, (versions, expected) in cases.items():
        assert unfinished_rotation(versions) == expected, name
        status = assess({"Name": "s", "ARN": "arn", "SecretVersionsToStages": versions}, now)
        assert (status.state == STUCK) is (expected is not None), name
    assert [str(s) for s in StrategyName] == ["single_user", "alternating_users"]
