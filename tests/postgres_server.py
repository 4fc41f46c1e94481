"""A real PostgreSQL server for the tests, started on localhost and stopped
at the end.

The server binaries come from Debian's ``postgresql`` package
(``requirements/debian-packages.txt``).  PostgreSQL refuses to run as root, so
as root the server runs as the ``postgres`` system user.  Connections over TCP
need a password (SCRAM), so a test that connects without the right password
fails as it would against a site's server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class PostgresServer:
    """Where the test server listens and who may log in."""

    host: str
    port: int
    user: str
    password: str
    database: str

    def url(self, *, password: bool = False, database: str | None = None) -> str:
        """SQLAlchemy URL of a database (the default one unless given)."""
        auth = f"{self.user}:{self.password}" if password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database or self.database}"


def _bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install the Debian package "
        "'postgresql' (make bootstrap does, as root)."
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def postgres_server(database: str = "apdb") -> Iterator[PostgresServer]:
    """Start a PostgreSQL server in a fresh data directory; stop it and
    remove the directory on exit.
    """
    bin_dir = _bin_dir()
    as_root = os.geteuid() == 0
    prefix: list[str] = ["runuser", "-u", "postgres", "--"] if as_root else []
    # Not under pytest's tmp_path: the server user must be able to reach it.
    root = Path(tempfile.mkdtemp(prefix="cutouts-pg-"))
    password = secrets.token_hex(12)
    user = "apdb_admin"
    data = root / "data"
    (root / "pwfile").write_text(password + "\n")
    if as_root:
        account = pwd.getpwnam("postgres")
        os.chown(root, account.pw_uid, account.pw_gid)
        os.chown(root / "pwfile", account.pw_uid, account.pw_gid)
    root.chmod(0o700)

    def run(*args: str) -> None:
        subprocess.run([*prefix, *args], check=True, capture_output=True, text=True, cwd=root)

    started = False
    try:
        try:
            run(
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                user,
                "--pwfile",
                str(root / "pwfile"),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--encoding=UTF8",
                "--no-sync",
            )
            port = _free_port()
            options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
            run(
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(root / "log"),
                "-w",
                "start",
            )
            started = True
            run(str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", user, database)
        except subprocess.CalledProcessError as error:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(
                f"PostgreSQL test server: {error.cmd[len(prefix)]} failed: {error.stderr}{log}"
            ) from None
        yield PostgresServer("127.0.0.1", port, user, password, database)
    finally:
        if started:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                capture_output=True,
                cwd=root,
            )
        shutil.rmtree(root, ignore_errors=True)
