"""The artifact knows what it was built for: loaded on another machine, it says so at once.

``scripts/sam-build`` writes ``keyturn_build.json`` (architecture and Python version) into each
artifact; the wheels in it (psycopg's compiled driver, and the bytecode) are for that target
only. A function deployed with another ``Architecture`` or ``Runtime`` would otherwise fail with
an obscure import error, or run slowly without its bytecode.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from .errors import ConfigurationError

BUILD_FILE = "keyturn_build.json"
_MACHINES = {"x86_64": {"x86_64", "amd64"}, "arm64": {"aarch64", "arm64"}}


def check_build_target(
    root: Path, machine: str | None = None, python: tuple[int, int] | None = None
) -> None:
    """Raise :class:`ConfigurationError` if the artifact at ``root`` was built for another
    architecture or Python than this process's. No build file (a source checkout): nothing."""
    try:
        built = json.loads((root / BUILD_FILE).read_text())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"{BUILD_FILE} in the artifact is unreadable") from exc
    machine = (machine or platform.machine()).lower()
    python = python or (sys.version_info.major, sys.version_info.minor)
    arch, version = str(built.get("architecture")), str(built.get("python"))
    running = f"{machine} with Python {python[0]}.{python[1]}"
    if machine not in _MACHINES.get(arch, {arch}) or version != f"{python[0]}.{python[1]}":
        raise ConfigurationError(
            f"this artifact was built for {arch} with Python {version} but runs on {running}: "
            f"build with `KEYTURN_LAMBDA_PYTHON={python[0]}.{python[1]} scripts/sam-build "
            f"{'arm64' if machine in _MACHINES['arm64'] else 'x86_64'}`, or deploy with "
            f"Architecture={arch} and Runtime=python{version} (a plain `sam deploy` of the "
            "build does)"
        )
