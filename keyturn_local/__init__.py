"""Running Keyturn on one machine: real database servers, the moto server, the demo and the CLI.

Not part of the Lambda artifacts: this is for developers, tests and ``keyturn demo``.
"""

from __future__ import annotations

from .certs import TlsFiles, make_ca, make_server_pki
from .servers import MariaDBServer, MotoServer, PostgresServer, ServerError, free_port

__all__ = [
    "MariaDBServer",
    "MotoServer",
    "PostgresServer",
    "ServerError",
    "TlsFiles",
    "free_port",
    "make_ca",
    "make_server_pki",
]
