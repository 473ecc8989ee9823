"""Plain-text tables for people; JSON is printed by the commands themselves."""

from __future__ import annotations

from collections.abc import Sequence

from keyturn_local.driver import StepRecord


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces.

    >>> print(table(["a", "bb"], [["1", "2"], ["333", "4"]]))
    a    bb
    1    2
    333  4
    """
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def print_step(record: StepRecord) -> None:
    """One line per step invocation."""
    status = "ok" if record.error is None else f"FAILED: {record.error}"
    print(
        f"  attempt {record.attempt}  {record.step.value:<13} {record.seconds * 1000:7.1f} ms  "
        f"{status}",
        flush=True,
    )


def print_versions(title: str, versions: dict[str, list[str]]) -> None:
    """The secret's versions and their stages, one per line."""
    print(f"  {title}:")
    for version_id, stages in sorted(versions.items(), key=lambda kv: sorted(kv[1])):
        print(f"    {version_id}  {', '.join(sorted(stages)) or '(no stage)'}")
