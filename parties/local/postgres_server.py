"""A throwaway PostgreSQL server for tests, benchmarks and the demo: initdb + pg_ctl.

It runs from the PostgreSQL binaries on the machine in a temporary folder,
listens on 127.0.0.1 at a free port, with its unix socket in the same
folder, and asks for a password (SCRAM) over TCP. PostgreSQL refuses to run
as root, so under root the server runs as the user ``nobody``.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER = "smpc"


@dataclass(frozen=True)
class Server:
    """A running server: its folder, port and the password of user ``smpc``."""

    folder: Path
    port: int
    password: str

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=postgres user={USER}"


def binaries() -> Path | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(password: str, settings: Sequence[str] = ()) -> Iterator[Server]:
    """Start a server (``settings``: extra ``name=value`` options); stop and remove it after."""
    bin_dir = binaries()
    if bin_dir is None:
        raise FileNotFoundError("no PostgreSQL binaries (initdb, pg_ctl)")
    folder = Path(tempfile.mkdtemp(prefix="smpc-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        prefix = ["runuser", "-u", "nobody", "--"]
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n", encoding="utf-8")
    if prefix:
        shutil.chown(pwfile, "nobody")
    data, port = folder / "data", _free_port()
    run = functools.partial(subprocess.run, check=True, capture_output=True, cwd=folder)
    try:
        run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", USER, "--pwfile", str(pwfile),
             "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale"],
        )  # fmt: skip
        options = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1"
        options += "".join(f" -c {setting}" for setting in settings)
        run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-w",
             "-l", str(folder / "log"), "start"],
        )  # fmt: skip
        try:
            yield Server(folder, port, password)
        finally:
            subprocess.run(
                [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                check=False,
                capture_output=True,
                cwd=folder,
            )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["USER", "Server", "binaries", "running"]
