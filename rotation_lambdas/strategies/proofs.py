"""Where a strategy's checks report: one sequence that setSecret runs and ``keyturn preflight``
lists.

A strategy runs each proof inside ``proofs.step(name)``. setSecret passes :class:`LoggedProofs`
(the first failure raises and stops the step); ``keyturn preflight`` passes a collector that turns
each step into a row of its report. Both run the same code, so what preflight promises is what
setSecret checks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from aws_lambda_powertools import Logger


@dataclass(slots=True)
class Note:
    """What a passed step tells preflight: a sentence, and optionally a warning and its fix."""

    text: str = ""
    warning: str | None = None
    hint: str | None = None

    def passed(self, text: str) -> None:
        self.text = text

    def warn(self, text: str, hint: str | None = None) -> None:
        self.warning, self.hint = text, hint


class Proofs:
    """Receives the outcome of each named step. The base class only runs them."""

    @contextmanager
    def step(self, name: str) -> Iterator[Note]:
        """Run the block as the step ``name``; an exception fails it (and propagates)."""
        note = Note()
        yield note
        self.passed(name, note)

    def passed(self, name: str, note: Note) -> None:
        """A step succeeded (``note`` says what was shown)."""


class LoggedProofs(Proofs):
    """setSecret's reporter: each passed proof is a debug line of the step's log (a warning is
    for the operator running preflight; the function has no one to act on it)."""

    def __init__(self, logger: Logger) -> None:
        self.logger = logger

    def passed(self, name: str, note: Note) -> None:
        self.logger.debug(f"proved: {name}", extra={"proof": note.warning or note.text})


__all__ = ["LoggedProofs", "Note", "Proofs"]
