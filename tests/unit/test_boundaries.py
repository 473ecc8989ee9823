"""What each part of the distribution needs: client_lib without the functions' dependencies."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Modules an application that only connects does not install.
FUNCTIONS_ONLY = ("aws_lambda_powertools", "moto", "cryptography")


def run(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` in a fresh interpreter where FUNCTIONS_ONLY cannot be imported."""
    blocked = "".join(f"sys.modules[{name!r}] = None;" for name in FUNCTIONS_ONLY)
    return subprocess.run(
        [sys.executable, "-c", f"import sys; {blocked}\n{code}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_client_lib_needs_neither_powertools_nor_the_local_tools() -> None:
    result = run(
        "import pkgutil, importlib, client_lib, keyturn_core\n"
        "for pkg in (client_lib, keyturn_core):\n"
        "    for m in pkgutil.iter_modules(pkg.__path__):\n"
        "        importlib.import_module(f'{pkg.__name__}.{m.name}')\n"
        "others = ('rotation_lambdas', 'keyturn_local')\n"
        "print(sorted(n for n in sys.modules if n.startswith(others)))"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_powertools_is_an_extra_of_the_functions_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert not [d for d in project["dependencies"] if "powertools" in d]
    assert [d for d in project["optional-dependencies"]["functions"] if "powertools" in d]
    for requirements in (ROOT / "sam" / "requirements").glob("*.txt"):
        assert "aws-lambda-powertools==" in requirements.read_text()


def test_the_command_without_the_functions_extra_says_what_to_install() -> None:
    result = run("import keyturn_cli; sys.exit(keyturn_cli.entry())")
    assert result.returncode == 2
    assert "pip install 'keyturn[functions,postgres,mysql]'" in result.stderr
    assert "Traceback" not in result.stderr
