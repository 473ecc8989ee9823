"""The README stays true: its settings, commands and snippets match the code."""

from __future__ import annotations

import os
import re
import shlex
from pathlib import Path

from keyturn_cli import build_parser
from rotation_lambdas import settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def shell_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.DOTALL)


def test_every_setting_is_documented() -> None:
    names = [v for k, v in vars(settings).items() if k.startswith("ENV_")]
    assert len(names) >= 11
    missing = [name for name in names if f"`{name}`" not in README]
    assert missing == []


def test_documented_defaults_match_the_code() -> None:
    assert f"| `{settings.ENV_PASSWORD_LENGTH}` | `{settings.DEFAULT_PASSWORD_LENGTH}` |" in README
    assert f"| `{settings.ENV_TLS_MODE}` | `{settings.DEFAULT_TLS_MODE.value}` |" in README
    assert f"``{settings.DEFAULT_EXCLUDE_CHARACTERS}``" in README


def test_the_two_commands_exist_and_ci_runs_the_test_command() -> None:
    first = shell_blocks()[0]
    commands = [line.split("#")[0].strip() for line in first.splitlines() if line.strip()]
    assert commands == ["scripts/demo", "scripts/test"]
    for command in commands:
        assert os.access(ROOT / command, os.X_OK), command
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test" in ci


def test_the_rotate_snippet_parses() -> None:
    snippet = next(block for block in shell_blocks() if "keyturn rotate" in block)
    argv = shlex.split(snippet.replace("\\\n", " "))
    assert argv[0].endswith("keyturn")
    args = build_parser().parse_args(argv[1:])
    assert args.command == "rotate"
    assert args.function == "postgres_single_user"
    assert args.register_stand_in is True
