"""The ``keyturn`` command-line tool: preflight, status, rotate and demo."""

from __future__ import annotations

from .aws import AwsOptions, CliError
from .main import build_parser, main
from .preflight import Check, Preflight
from .status import SecretStatus, assess, collect

__all__ = [
    "AwsOptions",
    "Check",
    "CliError",
    "Preflight",
    "SecretStatus",
    "assess",
    "build_parser",
    "collect",
    "main",
]
