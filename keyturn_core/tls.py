"""How a TLS mode becomes driver settings, the same for the rotation functions and the client.

Only ``disable`` ever allows plaintext: PyMySQL always gets an explicit TLS context otherwise
(its own default would continue in plaintext when the server has no TLS), and libpq gets the
mode itself (its default, ``prefer``, falls back silently).
"""

from __future__ import annotations

import ssl
from typing import Any

from .secret import TlsMode

# libpq 16+ reads "system" as the platform's trust store rather than ~/.postgresql/root.crt.
SYSTEM_TRUST_STORE = "system"


def libpq_tls_params(mode: TlsMode, ca_bundle: str | None) -> dict[str, str]:
    """``sslmode`` (and ``sslrootcert`` when the certificate is verified) for libpq.

    >>> libpq_tls_params(TlsMode.VERIFY_FULL, None)
    {'sslmode': 'verify-full', 'sslrootcert': 'system'}
    >>> libpq_tls_params(TlsMode.REQUIRE, "/ca.pem")
    {'sslmode': 'require'}
    """
    params = {"sslmode": mode.value}
    if mode in (TlsMode.VERIFY_CA, TlsMode.VERIFY_FULL):
        params["sslrootcert"] = ca_bundle or SYSTEM_TRUST_STORE
    return params


def ssl_context(mode: TlsMode, ca_bundle: str | None) -> ssl.SSLContext | None:
    """The TLS context for ``mode`` (TLS 1.2 or later); ``None`` only for ``disable``."""
    if mode is TlsMode.DISABLE:
        return None
    ctx = ssl.create_default_context(cafile=ca_bundle)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode is TlsMode.REQUIRE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode is TlsMode.VERIFY_CA:
        ctx.check_hostname = False
    return ctx


def pymysql_tls_params(mode: TlsMode, ca_bundle: str | None) -> dict[str, Any]:
    """``ssl`` (an explicit context) for PyMySQL, or ``ssl_disabled`` for ``disable``."""
    ctx = ssl_context(mode, ca_bundle)
    return {"ssl_disabled": True} if ctx is None else {"ssl": ctx}


__all__ = ["SYSTEM_TRUST_STORE", "libpq_tls_params", "pymysql_tls_params", "ssl_context"]
