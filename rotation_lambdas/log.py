"""The rotation functions' structured logger (aws-lambda-powertools)."""

from __future__ import annotations

import functools
import logging
import os
import sys
from typing import IO, Any

from aws_lambda_powertools import Logger

DEFAULT_SERVICE = "keyturn-rotation"


class _CurrentStdoutHandler(logging.StreamHandler[IO[str]]):
    """Writes to whatever ``sys.stdout`` is at the time of each record.

    A plain StreamHandler keeps the stream it was created with; a replaced stdout (pytest's
    capture, a CLI redirect) would then receive nothing, or fail once closed.
    """

    def __init__(self) -> None:
        super().__init__(sys.stdout)

    @property
    def stream(self) -> IO[str]:
        return sys.stdout

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


@functools.cache
def get_logger() -> Logger:
    """The process's one rotation logger. Level: ``POWERTOOLS_LOG_LEVEL`` (default INFO).

    One instance per process: powertools configures the named logger once and ignores the handler
    of any later instance.
    """
    return Logger(
        service=os.environ.get("POWERTOOLS_SERVICE_NAME", DEFAULT_SERVICE),
        logger_handler=_CurrentStdoutHandler(),
    )
