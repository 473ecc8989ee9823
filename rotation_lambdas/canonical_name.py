"""verify-full through a DNS alias (opt-in: ``KEYTURN_TLS_VERIFY_CANONICAL_NAME``).

A secret may name its database by an alias (``db.internal.example``, a CNAME of the RDS endpoint
``mydb.abc123.eu-west-1.rds.amazonaws.com``). The server's certificate carries the RDS name, not
the alias, so verify-full fails. With the setting on, the function resolves the secret's host,
follows its CNAME chain to the first name under an allowed suffix (``KEYTURN_TLS_CANONICAL_
NAME_SUFFIXES``, by default RDS's own domains), verifies the certificate against that name (still
chaining to the configured CA bundle) and connects to the address DNS gave, so what is verified
is what is reached. The first matching name, not the chain's last: an RDS endpoint may itself be
a CNAME of an EC2 name its certificate does not carry.

What this trusts: DNS, within the suffixes. Whoever can change the alias's answer chooses the
server among those holding a certificate from the bundle for a name under an allowed suffix
(with the defaults: any RDS endpoint, in any account). Without the setting, the certificate must
match the name written in the secret, whatever DNS says. Hence off by default.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .errors import ConfigurationError, NetworkError, TlsError

# socket.gethostbyname_ex: (canonical name, the chain's other names, IPv4 addresses).
Resolver = Callable[[str], tuple[str, list[str], list[str]]]

# RDS endpoints: <id>.<hash>.<region>.rds.amazonaws.com (GovCloud included); in China,
# <id>.<hash>.rds.<region>.amazonaws.com.cn. Other partitions: configure them.
DEFAULT_SUFFIXES = (
    ".rds.amazonaws.com",
    ".rds.cn-north-1.amazonaws.com.cn",
    ".rds.cn-northwest-1.amazonaws.com.cn",
)
_LABEL = r"[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?"
# At least two labels, the last not all digits: a DNS name, never an IP literal or a single label.
_HOST_NAME = re.compile(rf"(?=.{{1,253}}\Z){_LABEL}(\.{_LABEL})*\.(?![0-9]+\Z){_LABEL}")


@dataclass(frozen=True, slots=True)
class CanonicalTarget:
    """Where to connect (``address``) and the name the certificate must carry (``name``)."""

    name: str
    address: str


def is_host_name(name: str) -> bool:
    """A DNS name of two labels or more; not an IP literal.

    >>> [is_host_name(n) for n in ("db.example", "localhost", "10.0.0.5", "a..b", "x.example\\n")]
    [True, False, False, False, False]
    """
    return _HOST_NAME.fullmatch(name) is not None


def under(name: str, suffixes: Sequence[str]) -> bool:
    """Whether ``name`` is under one of ``suffixes`` (each starting with a dot)."""
    return any(name.endswith(suffix) and len(name) > len(suffix) for suffix in suffixes)


def canonical_target(
    host: str,
    suffixes: Sequence[str] = DEFAULT_SUFFIXES,
    resolve: Resolver | None = None,
) -> CanonicalTarget | None:
    """The first name under ``suffixes`` on ``host``'s CNAME chain and an address; ``None``
    when ``host`` is an IP address, is itself under a suffix, or has no such name on its chain
    (then it is verified as written, as without the setting)."""
    wanted = host.rstrip(".").lower()
    try:
        ipaddress.ip_address(wanted)
        return None
    except ValueError:
        pass
    if under(wanted, suffixes):
        return None
    try:
        canonical, aliases, addresses = (resolve or socket.gethostbyname_ex)(wanted)
    except (OSError, UnicodeError) as exc:
        raise NetworkError(
            f"the host {host} could not be resolved to follow its CNAME chain",
            hint="check the host name in the secret and the function's DNS (VPC resolver)",
        ) from exc
    if not addresses:
        raise NetworkError(f"the host {host} resolved to no address")
    chain = [n.rstrip(".").lower() for n in (*aliases, canonical)]
    for name in chain:
        if name != wanted and under(name, suffixes):
            if not is_host_name(name):
                raise TlsError(f"DNS gave the host {host} an alias that is not a host name")
            return CanonicalTarget(name, str(addresses[0]))
    return None  # no name under a suffix: verified as written, as without the setting


def parse_suffixes(value: str, variable: str) -> tuple[str, ...]:
    """A comma-separated suffix list, each given a leading dot: DNS names of three labels or more
    (two, such as ``.co.uk`` or ``.amazonaws.com``, would let whole registries or services in)."""
    suffixes = []
    for item in value.split(","):
        suffix = item.strip().lower().rstrip(".")
        if not suffix:
            continue
        bare = suffix.removeprefix(".")
        if not is_host_name(bare) or bare.count(".") < 2:
            raise ConfigurationError(
                f"{variable}: '{item.strip()}' is not a DNS suffix of three labels or more"
            )
        suffixes.append("." + bare)
    if not suffixes:
        raise ConfigurationError(f"{variable} names no suffix")
    return tuple(suffixes)


__all__ = [
    "DEFAULT_SUFFIXES",
    "CanonicalTarget",
    "canonical_target",
    "is_host_name",
    "parse_suffixes",
    "under",
]
