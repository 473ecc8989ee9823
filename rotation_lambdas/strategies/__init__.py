"""Rotation strategies: one module each."""

from __future__ import annotations

from .alternating_users import AlternatingUsersStrategy, ParityError
from .base import StepContext, Strategy, StrategyName
from .single_user import SingleUserStrategy

__all__ = [
    "AlternatingUsersStrategy",
    "ParityError",
    "SingleUserStrategy",
    "StepContext",
    "Strategy",
    "StrategyName",
]
