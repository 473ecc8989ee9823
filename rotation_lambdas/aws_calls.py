"""botocore failures of one AWS call turned into our errors, naming the service, the call and the
error code, never a value. Shared by the Secrets Manager store and the RDS locator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ConnectTimeoutError

from .errors import NetworkError, PrivilegeError, RotationError

DENIED = ("AccessDeniedException", "AccessDenied", "KMSAccessDeniedException")


class MissingResource(Exception):
    """Internal: the call answered that what it was asked for does not exist."""


@contextmanager
def translated(
    service: str,
    operation: str,
    *,
    error: type[RotationError],
    denied_hint: str,
    network_hint: str,
    missing: tuple[str, ...] = (),
) -> Iterator[None]:
    """Raise ``error`` (or :class:`PrivilegeError`, :class:`NetworkError`) for a failed call;
    :class:`MissingResource` for an error code in ``missing``, for the caller to decide."""
    try:
        yield
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
        if code in missing:
            raise MissingResource(code) from None
        if code in DENIED:
            raise PrivilegeError(
                f"{service} denied {operation} ({code})", hint=denied_hint
            ) from exc
        raise error(f"{service} {operation} failed ({code})") from exc
    except (ConnectionError, ConnectTimeoutError) as exc:
        raise NetworkError(
            f"{service} could not be reached for {operation}", hint=network_hint
        ) from exc
    except BotoCoreError as exc:
        raise error(f"{service} {operation} failed ({type(exc).__name__})") from exc
