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


def ssl_context(
    mode: TlsMode, ca_bundle: str | None, *, server_name: str | None = None
) -> ssl.SSLContext | None:
    """The TLS context for ``mode`` (TLS 1.2 or later); ``None`` only for ``disable``.

    ``server_name``: verify the certificate against this name whatever host name the driver
    passes (it connects to an address; see the rotation functions' canonical-name option).
    """
    if mode is TlsMode.DISABLE:
        return None
    ctx = ssl.create_default_context(cafile=ca_bundle)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if mode is TlsMode.REQUIRE:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif mode is TlsMode.VERIFY_CA:
        ctx.check_hostname = False
    if server_name is not None:
        wrap = ctx.wrap_socket

        def wrap_for_name(sock: Any, *args: Any, **kwargs: Any) -> ssl.SSLSocket:
            kwargs["server_hostname"] = server_name  # SNI and the name verified
            return wrap(sock, *args, **kwargs)

        # PyMySQL calls ctx.wrap_socket(sock, server_hostname=<the host it connected to>).
        setattr(ctx, "wrap_socket", wrap_for_name)  # noqa: B010 - mypy refuses assigning a method
    return ctx


def pymysql_tls_params(
    mode: TlsMode, ca_bundle: str | None, *, server_name: str | None = None
) -> dict[str, Any]:
    """``ssl`` (an explicit context) for PyMySQL, or ``ssl_disabled`` for ``disable``."""
    ctx = ssl_context(mode, ca_bundle, server_name=server_name)
    return {"ssl_disabled": True} if ctx is None else {"ssl": ctx}


__all__ = ["SYSTEM_TRUST_STORE", "libpq_tls_params", "pymysql_tls_params", "ssl_context"]
