"""Rotation strategies: one module each."""

from __future__ import annotations

from .base import StepContext, Strategy
from .single_user import SingleUserStrategy

__all__ = ["SingleUserStrategy", "StepContext", "Strategy"]
