"""The errors of keyturn_core; each consuming package subclasses them into its own hierarchy."""

from __future__ import annotations


class SecretFormatError(ValueError):
    """A secret value is not valid rotation-format JSON; the message names the key at fault and
    never shows a value."""


__all__ = ["SecretFormatError"]
