"""Records the build's target in the built template, so a plain ``sam deploy`` deploys it.

    python sam/build/record_target.py BUILT_TEMPLATE ARCHITECTURE RUNTIME

``scripts/sam-build arm64`` builds aarch64 wheels; the template's ``Architecture`` default is
x86_64, and ``sam deploy`` (guided or not) offers the defaults of the template it deploys, the
built one. This sets that template's ``Architecture`` and ``Runtime`` defaults to what was built,
and narrows their allowed values to it: a deploy that overrides them fails at once, in
CloudFormation, instead of loading aarch64 wheels on an x86_64 function.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path


def record(text: str, values: dict[str, str]) -> str:
    """``text`` with each named parameter's Default and AllowedValues set to its value."""
    lines = text.splitlines(keepends=True)
    try:
        start = lines.index("Parameters:\n")
    except ValueError:
        raise SystemExit("the built template has no Parameters section") from None
    seen: set[str] = set()
    current: str | None = None
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if line.strip() and not line.startswith(" "):
            break  # the next top-level section
        if match := re.fullmatch(r"  ([A-Za-z0-9]+):\s*\n", line):
            current = match.group(1) if match.group(1) in values else None
            continue
        if current is None:
            continue
        if match := re.fullmatch(r"(\s+)Default:.*\n", line):
            lines[i] = f"{match.group(1)}Default: {values[current]}\n"
            seen.add(current)
        elif match := re.fullmatch(r"(\s+)AllowedValues:.*\n", line):
            # Flow style on one line; a block list below it is replaced by the flow form.
            lines[i] = f"{match.group(1)}AllowedValues: [{values[current]}]\n"
            j = i + 1
            while j < len(lines) and re.fullmatch(r"\s+- .*\n", lines[j]):
                lines[j] = ""
                j += 1
    missing = set(values) - seen
    if missing:
        raise SystemExit(f"the built template has no default for {sorted(missing)}")
    return "".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    path = Path(argv[1])
    path.write_text(record(path.read_text(), {"Architecture": argv[2], "Runtime": argv[3]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
