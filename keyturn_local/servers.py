"""Real database servers and a moto server on loopback, for the demo and the tests.

Each server takes a free port on 127.0.0.1, lives in its own temporary directory, and stops when
its ``with`` block ends, whatever happened inside it. As root (as CI runs), PostgreSQL runs as the
``postgres`` user and MariaDB as ``mysql``: both refuse to run as root.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from .certs import TlsFiles, make_server_pki

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig

HOST = "127.0.0.1"
# DNS names the test servers' certificates also carry (tests map them in a private /etc/hosts):
# one of our own, and the RDS instance endpoints moto's RDS gives in us-east-1.
TEST_DNS_SUFFIX = ".db.keyturn.test"
TEST_DNS_NAME = "server" + TEST_DNS_SUFFIX
MOTO_RDS_INSTANCES = "*.aaaaaaaaaa.us-east-1.rds.amazonaws.com"
# moto's RotateSecret invokes the recorded function; its stub Lambda backend answers without Docker.
MOTO_CONFIG: DefaultConfig = {"lambda": {"use_docker": False}}
_START_TIMEOUT = 30.0


class ServerError(RuntimeError):
    """A local server could not be started; the message ends with the tail of its log."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _is_root() -> bool:
    return os.geteuid() == 0


def _chown(path: Path, user: str) -> None:
    if _is_root():
        entry = pwd.getpwnam(user)
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _as(user: str, argv: list[str]) -> list[str]:
    return ["runuser", "-u", user, "--", *argv] if _is_root() else argv


def _base_dir(prefix: str) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)  # the server's own user must reach its files inside
    return path


@dataclass(frozen=True, slots=True)
class AdminLogin:
    """How to reach a server as its administrator."""

    host: str
    port: int
    user: str
    password: str


class _Server:
    """Shared start/stop plumbing; subclasses implement ``_start`` and ``_stop``."""

    name = "server"

    def __init__(
        self,
        *,
        tls: bool = True,
        statement_log: bool = False,
        tls_hosts: tuple[str, ...] = (HOST, "localhost", TEST_DNS_NAME, MOTO_RDS_INSTANCES),
    ) -> None:
        self.tls = tls
        self.tls_hosts = tls_hosts
        self.statement_log = statement_log
        self.port = free_port()
        self.base = _base_dir(f"keyturn-{self.name}-")
        self.tls_files: TlsFiles | None = None
        self.admin = AdminLogin(HOST, self.port, "", secrets.token_urlsafe(18))
        self._running = False

    def __enter__(self) -> Self:
        try:
            if self.tls:
                self.tls_files = make_server_pki(self.base / "tls", self.tls_hosts)
            self._start()
            self._running = True
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the server and remove its directory; safe to call twice."""
        with contextlib.suppress(Exception):
            self._stop()
        self._running = False
        shutil.rmtree(self.base, ignore_errors=True)

    def _start(self) -> None:
        raise NotImplementedError

    def _stop(self) -> None:
        raise NotImplementedError


def _postgres_majors() -> tuple[str, ...]:
    listed = Path(__file__).resolve().parents[1] / "scripts" / "postgres-versions.txt"
    if not listed.exists():  # an installed package, not a checkout
        return ()
    lines = (line.split() for line in listed.read_text().splitlines())
    return tuple(words[0] for words in lines if words and not words[0].startswith("#"))


POSTGRES_MAJORS = _postgres_majors()
"""The PostgreSQL versions scripts/bootstrap installs besides the system's (its one list)."""


def postgres_binaries() -> Path:
    """Where scripts/bootstrap unpacks the PostgreSQL versions Debian lacks (one folder each)."""
    configured = os.environ.get("KEYTURN_PG_DIR")
    if configured:
        return Path(configured)
    if _is_root():
        return Path("/opt/keyturn/postgresql")
    return Path(__file__).resolve().parents[1] / ".cache" / "postgresql"


def _postgres_bindir(major: str | None = None) -> Path:
    if major is not None:
        bindir = postgres_binaries() / major / "bin"
        if not (bindir / "initdb").exists():
            raise ServerError(
                f"PostgreSQL {major} is not installed in {bindir}; run scripts/bootstrap"
            )
        return bindir
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(candidate, "initdb").exists():
            return Path(candidate)
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerError("PostgreSQL is not installed (no initdb); run scripts/bootstrap")


class PostgresServer(_Server):
    """PostgreSQL on 127.0.0.1 with TLS from a throwaway CA and SCRAM passwords.

    ``major``: one of the versions scripts/bootstrap installs besides the system's ("16", "17",
    "18"); None for the system's own (Debian's 15, which has the message catalogs).
    """

    name = "postgres"

    def __init__(self, *, major: str | None = None, **kwargs: Any) -> None:
        self.major = major
        super().__init__(**kwargs)

    def _start(self) -> None:
        bindir = _postgres_bindir(self.major)
        self.admin = AdminLogin(HOST, self.port, "postgres", self.admin.password)
        data, run = self.base / "data", self.base / "run"
        run.mkdir()
        pwfile = self.base / "pwfile"
        pwfile.write_text(self.admin.password + "\n")
        self.log_path = self.base / "postgres.log"
        _chown(self.base, "postgres")
        subprocess.run(
            _as(
                "postgres",
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    f"--pwfile={pwfile}",
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--no-sync",
                ],
            ),
            check=True,
            capture_output=True,
        )
        pwfile.unlink()
        options = [
            f"-c listen_addresses={HOST}",
            f"-p {self.port}",
            f"-k {run}",
            "-c fsync=off",
            "-c password_encryption=scram-sha-256",
        ]
        if self.tls_files is not None:
            options += [
                "-c ssl=on",
                f"-c ssl_cert_file={self.tls_files.server_cert}",
                f"-c ssl_key_file={self.tls_files.server_key}",
            ]
        if self.statement_log:
            options += ["-c log_statement=all"]
        result = subprocess.run(
            _as(
                "postgres",
                [
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-w",
                    "-t",
                    str(int(_START_TIMEOUT)),
                    "-l",
                    str(self.log_path),
                    "-o",
                    " ".join(options),
                    "start",
                ],
            ),
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            raise ServerError(f"PostgreSQL did not start:\n{_tail(self.log_path)}")
        self._bindir = bindir

    def _stop(self) -> None:
        if self._running:
            subprocess.run(
                _as(
                    "postgres",
                    [
                        str(self._bindir / "pg_ctl"),
                        "-D",
                        str(self.base / "data"),
                        "-m",
                        "immediate",
                        "-w",
                        "stop",
                    ],
                ),
                capture_output=True,
                check=False,
                timeout=30,
            )


class MariaDBServer(_Server):
    """MariaDB on 127.0.0.1 with TLS from a throwaway CA; root has a random password."""

    name = "mariadb"

    def _start(self) -> None:
        install_db = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = shutil.which("mariadbd") or (
            "/usr/sbin/mariadbd" if Path("/usr/sbin/mariadbd").exists() else None
        )
        if install_db is None or server is None:
            raise ServerError("MariaDB is not installed; run scripts/bootstrap")
        self.admin = AdminLogin(HOST, self.port, "root", self.admin.password)
        data, run = self.base / "data", self.base / "run"
        run.mkdir()
        self.log_path = self.base / "mariadb.log"
        self.socket = run / "mariadb.sock"
        user_flag = ["--user=mysql"] if _is_root() else []
        _chown(self.base, "mysql")
        subprocess.run(
            [
                install_db,
                "--no-defaults",
                *user_flag,
                f"--datadir={data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
        )
        argv = [
            server,
            "--no-defaults",
            *user_flag,
            f"--datadir={data}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            f"--bind-address={HOST}",
            "--skip-name-resolve",
            "--skip-log-bin",
            f"--log-error={self.log_path}",
            f"--pid-file={run / 'mariadb.pid'}",
            "--innodb-buffer-pool-size=32M",
            "--innodb-log-file-size=16M",
            "--skip-innodb-doublewrite",
            "--innodb-flush-log-at-trx-commit=0",
        ]
        if self.tls_files is not None:
            argv += [
                f"--ssl-ca={self.tls_files.ca_cert}",
                f"--ssl-cert={self.tls_files.server_cert}",
                f"--ssl-key={self.tls_files.server_key}",
            ]
        if self.statement_log:
            argv += ["--general-log=1", f"--general-log-file={self.base / 'general.log'}"]
        self._process = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        self._wait_ready()
        self._secure_root()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            # A raw probe first: PyMySQL leaks its socket when a connect fails.
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                try:
                    probe.connect(str(self.socket))
                except OSError:
                    time.sleep(0.1)
                    continue
            return
        raise ServerError(f"MariaDB did not start:\n{_tail(self.log_path)}")

    def _secure_root(self) -> None:
        """install-db leaves root accounts with empty passwords: keep two, both with a password."""
        import pymysql

        conn = pymysql.connect(unix_socket=str(self.socket), user="root", password="")
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'"
                )
                for (host,) in cur.fetchall():
                    cur.execute("DROP USER IF EXISTS 'root'@%s", (host,))
                cur.execute(
                    "ALTER USER 'root'@'localhost' IDENTIFIED BY %s", (self.admin.password,)
                )
                cur.execute("CREATE USER 'root'@%s IDENTIFIED BY %s", (HOST, self.admin.password))
                cur.execute("GRANT ALL ON *.* TO 'root'@%s WITH GRANT OPTION", (HOST,))
                # As root@localhost has it: tests set up PROXY grants through this account.
                cur.execute("GRANT PROXY ON ''@'%%' TO 'root'@%s WITH GRANT OPTION", (HOST,))
        finally:
            conn.close()

    def _stop(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


class MotoServer(_Server):
    """The moto server (a Secrets Manager stand-in) on 127.0.0.1."""

    name = "moto"

    def __init__(self) -> None:
        super().__init__(tls=False)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _start(self) -> None:
        binary = Path(sys.executable).with_name("moto_server")
        if not binary.exists():
            raise ServerError("moto_server is not installed in this environment (keyturn[local])")
        self.log_path = self.base / "moto.log"
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(binary), "-H", HOST, "-p", str(self.port)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline and self._process.poll() is None:
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1):  # noqa: S310
                    break
            except OSError:
                time.sleep(0.1)
        else:
            raise ServerError(f"moto_server did not start:\n{_tail(self.log_path)}")
        self._post("/moto-api/config", MOTO_CONFIG)

    def _post(self, path: str, body: Any = None) -> None:
        request = urllib.request.Request(  # noqa: S310 - our own loopback endpoint
            f"{self.endpoint}{path}",
            method="POST",
            data=json.dumps(body or {}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - loopback only
            pass

    def reset(self) -> None:
        """Forget every resource (``POST /moto-api/reset``), keeping the configuration."""
        self._post("/moto-api/reset")
        self._post("/moto-api/config", MOTO_CONFIG)

    def _stop(self) -> None:
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@contextlib.contextmanager
def sigterm_as_exit() -> Iterator[None]:
    """Turn SIGTERM into SystemExit so ``with`` blocks stop their servers when killed."""

    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
