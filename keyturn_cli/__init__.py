"""The ``keyturn`` command-line tool: preflight, status, rotate and demo.

It runs the rotation functions' code, so it needs their extra (``keyturn[functions]``) and the
drivers; without them the package still imports, and the console script (:func:`entry`) says
what to install instead of printing a traceback.
"""

from __future__ import annotations

_NEEDED = {"aws_lambda_powertools", "psycopg", "pymysql"}
_missing: str | None = None

try:
    from .aws import AwsOptions, CliError
    from .main import build_parser, main
    from .preflight import Check, Preflight
    from .status import SecretStatus, assess, collect
except ModuleNotFoundError as exc:
    if exc.name not in _NEEDED:
        raise
    _missing = exc.name


def entry() -> int:
    """The console script: ``main()``, or a hint when the functions' extra is not installed."""
    if _missing is not None:
        import sys

        print(
            f"keyturn: the command needs {_missing}, a dependency of the rotation functions: "
            "pip install 'keyturn[functions,postgres,mysql]'",
            file=sys.stderr,
        )
        return 2
    return main()


__all__ = [
    "AwsOptions",
    "Check",
    "CliError",
    "Preflight",
    "SecretStatus",
    "assess",
    "build_parser",
    "collect",
    "entry",
    "main",
]
