"""verify-full through a DNS alias (opt-in: ``KEYTURN_TLS_VERIFY_CANONICAL_NAME``).

A secret may name its database by an alias (``db.internal.example``, a CNAME of the RDS endpoint
``mydb.abc123.eu-west-1.rds.amazonaws.com``). The server's certificate carries the RDS name, not
the alias, so verify-full fails. With the setting on, the function resolves the secret's host,
takes the canonical name DNS gives, verifies the certificate against that name (still chaining to
the configured CA bundle) and connects to the address DNS gave with it, so what is verified is
what is reached.

What this trusts: DNS. Whoever can change the alias's answer chooses the server, as long as it
holds a certificate from the bundle for the name the answer gives (with the RDS bundle: any RDS
endpoint, in any account). Without the setting, the certificate must match the name written in
the secret, whatever DNS says. Hence off by default.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import NetworkError, TlsError

Resolver = Callable[..., list[tuple[Any, ...]]]

_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(\.{_LABEL})*$")


@dataclass(frozen=True, slots=True)
class CanonicalTarget:
    """Where to connect (``address``) and the name the certificate must carry (``name``)."""

    name: str
    address: str


def canonical_target(
    host: str, port: int, resolve: Resolver | None = None
) -> CanonicalTarget | None:
    """The canonical name and an address of ``host``; ``None`` when ``host`` is an IP address
    or already its own canonical name (nothing to change)."""
    try:
        ipaddress.ip_address(host)
        return None
    except ValueError:
        pass
    try:
        answers = (resolve or socket.getaddrinfo)(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_CANONNAME
        )
    except (OSError, UnicodeError) as exc:
        raise NetworkError(
            f"the host {host} could not be resolved to its canonical name",
            hint="check the host name in the secret and the function's DNS (VPC resolver)",
        ) from exc
    if not answers:
        raise NetworkError(f"the host {host} resolved to no address")
    _, _, _, canonical_name, address = answers[0]
    canonical = str(canonical_name or "").rstrip(".").lower()
    if not canonical or canonical == host.rstrip(".").lower():
        return None
    if not _HOST_NAME.match(canonical):
        raise TlsError(
            f"DNS gave the host {host} a canonical name that is not a host name; nothing was sent"
        )
    return CanonicalTarget(canonical, str(address[0]))


__all__ = ["CanonicalTarget", "canonical_target"]
