"""arm64 artifacts carry aarch64 wheels, psycopg's compiled driver included (read from ELF)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import FUNCTIONS, sam_build

EM_X86_64, EM_AARCH64 = 62, 183


def elf_machine(path: Path) -> int | None:
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF":
        return None
    return int.from_bytes(header[18:20], "little")


def machines(artifact: Path) -> dict[str, int]:
    found: dict[str, int] = {}
    for path in artifact.rglob("*.so*"):
        if path.is_file() and (machine := elf_machine(path)) is not None:
            found[str(path.relative_to(artifact))] = machine
    return found


@pytest.fixture(scope="module")
def arm64_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sam_build("arm64", tmp_path_factory.mktemp("sam-arm64") / "build")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_arm64_artifacts_hold_only_aarch64_binaries(arm64_build: Path, function: str) -> None:
    found = machines(arm64_build / function)
    if "Postgres" in function:
        libpq = [name for name in found if "libpq" in name]
        assert libpq, "psycopg's compiled driver is missing"
        assert any(name.startswith("psycopg_binary/") for name in found)
    assert set(found.values()) <= {EM_AARCH64}, {k: v for k, v in found.items() if v != EM_AARCH64}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_x86_64_artifacts_hold_only_x86_64_binaries(build_dir: Path, function: str) -> None:
    found = machines(build_dir / function)
    assert set(found.values()) <= {EM_X86_64}
    if "Postgres" in function:
        assert any("libpq" in name for name in found)


def test_an_arm64_build_deploys_as_arm64(arm64_build: Path) -> None:
    """A plain `sam deploy` takes the built template's defaults: they are what was built."""
    from cfnlint.decode import decode_str

    template, matches = decode_str((arm64_build / "template.yaml").read_text())
    assert not matches
    parameters = template["Parameters"]
    assert parameters["Architecture"]["Default"] == "arm64"
    assert parameters["Architecture"]["AllowedValues"] == ["arm64"]
    assert parameters["Runtime"]["Default"] == "python3.12"
    for function in FUNCTIONS:
        recorded = json.loads((arm64_build / function / "keyturn_build.json").read_text())
        assert recorded == {"architecture": "arm64", "python": "3.12"}
