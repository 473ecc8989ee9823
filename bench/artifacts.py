"""Artifact sizes and cold start cost of each rotation function, with anchors from the same run.

    .venv/bin/python bench/artifacts.py [BUILD_DIR]

BUILD_DIR defaults to a fresh `scripts/sam-build x86_64` into .aws-sam/bench. For each function:
unzipped and zipped size, then, as Lambda runs it - a read-only copy of the artifact, fresh
`python -I -S -B` interpreters (no site, no bytecode written: /var/task is read-only) with only
the artifact on the path - the median of 11 cold imports of the handler module and of the
handler's first initialisation (import + engine: settings, adapter, boto3 client). Anchors from
the same copies in the same run: interpreter start-up alone, and `import boto3` plus the
function's driver (what AWS's own rotation functions import, the runtime's SDK precompiled).
The target is at most 1.25x that anchor.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = {
    "PostgresSingleUserFunction": ("postgres_single_user", "postgres"),
    "MySQLSingleUserFunction": ("mysql_single_user", "mysql"),
    "PostgresAlternatingUsersFunction": ("postgres_alternating_users", "postgres"),
    "MySQLAlternatingUsersFunction": ("mysql_alternating_users", "mysql"),
}
RUNS = 11
PYTHON = sys.executable


def sizes(artifact: Path) -> tuple[int, int]:
    files = [p for p in artifact.rglob("*") if p.is_file()]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(artifact))
    return sum(p.stat().st_size for p in files), buf.tell()


def timed(artifact: Path, *bodies: str) -> list[float]:
    """Median milliseconds of each body in fresh `python -I -S -B` processes (the artifact
    first). The bodies take turns, run after run, so a machine slowing down or speeding up
    during the measurement weighs on each alike and the ratios between them hold."""
    env = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": os.environ.get("PATH", "")}
    samples: list[list[float]] = [[] for _ in bodies]
    for _ in range(RUNS):
        for i, body in enumerate(bodies):
            code = (
                "import time, sys\n"
                f"sys.path.insert(0, {str(artifact)!r})\n"
                "t = time.perf_counter()\n"
                f"{body}\n"
                "print((time.perf_counter() - t) * 1000)"
            )
            out = subprocess.run(
                [PYTHON, "-I", "-S", "-B", "-c", code],
                capture_output=True,
                text=True,
                check=True,
                env=env,
            )
            samples[i].append(float(out.stdout.strip()))
    return [statistics.median(s) for s in samples]


def read_only_copy(artifact: Path, into: Path) -> Path:
    """A copy of ``artifact`` without write permission, as /var/task is."""
    copy = into / artifact.name
    shutil.copytree(artifact, copy)
    for path in [copy, *copy.rglob("*")]:
        mode = path.stat().st_mode
        path.chmod(mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return copy


def make_writable(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def startup_ms() -> float:
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run([PYTHON, "-I", "-S", "-B", "-c", "pass"], check=True)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    build = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / ".aws-sam" / "bench"
    if len(sys.argv) == 1:
        subprocess.run(
            [str(ROOT / "scripts" / "sam-build"), "x86_64", "--build-dir", str(build)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    startup = startup_ms()
    print(f"anchor: interpreter start-up (python -I -S -B -c pass): {startup:7.1f} ms")
    print(
        f"{'function':34} {'unzipped':>9} {'zipped':>8} {'boto3+drv':>9} {'import':>8} "
        f"{'init':>8}  import/anchor"
    )
    scratch = Path(tempfile.mkdtemp(prefix="keyturn-bench-"))
    try:
        for function, (handler, family) in FUNCTIONS.items():
            measure(read_only_copy(build / function, scratch), function, handler, family)
    finally:
        make_writable(scratch)
        shutil.rmtree(scratch)


def measure(artifact: Path, function: str, handler: str, family: str) -> None:
    raw, packed = sizes(artifact)
    driver = "psycopg" if family == "postgres" else "pymysql"
    strategy = "alternating_users" if "Alternating" in function else "single_user"
    engine_family = "POSTGRESQL" if family == "postgres" else "MYSQL"
    anchor, imported, init = timed(
        artifact,
        f"import boto3, {driver}",
        f"from rotation_lambdas.handlers import {handler}\n"
        f"import rotation_lambdas.adapters.{family}",
        "from rotation_lambdas.handlers import build_engine, EngineFamily\n"
        f"build_engine(EngineFamily.{engine_family}, {strategy!r})",
    )
    print(
        f"{function:34} {raw / 2**20:7.1f}MB {packed / 2**20:6.1f}MB {anchor:7.0f}ms "
        f"{imported:6.0f}ms {init:6.0f}ms  {imported / anchor:5.2f}x"
    )


if __name__ == "__main__":
    main()
