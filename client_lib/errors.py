"""One error hierarchy for the client library."""

from __future__ import annotations


class ClientLibError(Exception):
    """Base class of every error raised by ``client_lib``."""


class SecretValueError(ClientLibError):
    """A secret's value is not usable as database credentials; names the key, never a value."""
