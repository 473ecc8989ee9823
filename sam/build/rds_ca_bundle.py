"""Puts AWS's RDS CA bundle into an artifact: the functions verify RDS and Aurora out of the box.

    python sam/build/rds_ca_bundle.py DEST

Fetched at build time from AWS's trust store address (the global bundle: every RDS and Aurora CA
of the commercial regions), or copied from the PEM file ``KEYTURN_RDS_CA_BUNDLE`` names (offline
builds, GovCloud and China bundles, or a test CA). Either way the file must hold CA certificates
that load, or the build fails: an artifact never ships a bundle that trusts nothing.
"""

from __future__ import annotations

import os
import shutil
import ssl
import sys
import tempfile
import urllib.request
from pathlib import Path

URL = "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem"
ENV_OVERRIDE = "KEYTURN_RDS_CA_BUNDLE"
_MAX_BYTES = 2_000_000


def certificates_in(path: Path) -> int:
    """How many CA certificates ``path`` holds; raises if it is not a PEM bundle that loads."""
    text = path.read_text(encoding="ascii")
    count = text.count("-----BEGIN CERTIFICATE-----")
    if count == 0:
        raise ValueError(f"{path} holds no PEM certificate")
    ctx = ssl.create_default_context(cafile=str(path))  # raises on a malformed bundle
    if not ctx.get_ca_certs():
        raise ValueError(f"{path} holds no CA certificate")
    return count


def fetch(dest: Path) -> str:
    """Write the bundle to ``dest``; return where it came from."""
    override = os.environ.get(ENV_OVERRIDE)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "bundle.pem"
        if override:
            shutil.copyfile(override, staged)
            source = override
        else:
            try:
                with urllib.request.urlopen(URL, timeout=30) as response:
                    staged.write_bytes(response.read(_MAX_BYTES))
            except OSError as exc:
                raise SystemExit(
                    f"cannot fetch the RDS CA bundle from {URL} ({exc}); for an offline build, "
                    f"set {ENV_OVERRIDE} to a local copy of it"
                ) from exc
            source = URL
        count = certificates_in(staged)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(staged, dest)
    return f"{count} certificates from {source}"


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(f"RDS CA bundle: {fetch(Path(argv[1]))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
