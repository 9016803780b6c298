"""A throwaway PostgreSQL server on loopback, from Debian's packages, for the storage tests.

``make setup`` installs Debian's ``postgresql`` package; nothing here talks to a system
cluster. Each test session makes its own cluster (``initdb``) in a temporary folder, listening
on 127.0.0.1 on a free port with trust authentication, and stops it at the end. PostgreSQL
refuses to run as root, so as root (containers, CI) the server runs as the ``postgres`` user
that the Debian package creates.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

_INSTALL = "run `make setup` (it installs Debian's postgresql package)"


def _bindir() -> Path:
    """The newest installed PostgreSQL's programs (Debian keeps them off PATH)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    if initdb is None:
        raise RuntimeError(f"PostgreSQL's initdb is not installed: {_INSTALL}")
    return Path(initdb).resolve().parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Server:
    """A running server: ``url(database)`` is an SQLAlchemy URL for one of its databases."""

    port: int

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """Create an empty database and return its URL: each test gets its own."""
        import psycopg2

        name = f"hpsearch_{uuid.uuid4().hex[:12]}"
        connection = psycopg2.connect(host="127.0.0.1", port=self.port, user="postgres")
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.url(name)


@contextlib.contextmanager
def running_server(root: Path) -> Iterator[Server]:
    """Start a fresh PostgreSQL cluster under ``root``; stop it (and wait) on exit."""
    bindir = _bindir()
    data, sockets = root / "data", root / "sockets"
    sockets.mkdir(parents=True)
    as_user: list[str] = []
    if os.geteuid() == 0:
        runuser = shutil.which("runuser")
        if runuser is None:
            raise RuntimeError("running as root without `runuser` to start PostgreSQL as postgres")
        as_user = [runuser, "-u", "postgres", "--"]
        root.chmod(0o755)
        shutil.chown(sockets, "postgres")
        data.mkdir()
        shutil.chown(data, "postgres")
    env = {**os.environ, "LC_ALL": "C.UTF-8"}
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
        env=env,
    )
    port = _free_port()
    options = f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} -c fsync=off"
    ctl = [*as_user, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*ctl, "-o", options, "-l", str(sockets / "server.log"), "-w", "start"],
        check=True,
        capture_output=True,
        env=env,
    )
    try:
        yield Server(port)
    finally:
        subprocess.run([*ctl, "-m", "fast", "-w", "stop"], capture_output=True, env=env)
