"""A throwaway PostgreSQL server for the SQL source tests (the ``pg_url`` fixture).

``initdb`` a cluster in a temporary folder and ``pg_ctl start`` it on a free local
port, trusting local connections; stopped and removed at the end of the session.
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres``
user (created when missing). ``MAILSMITH_PG_URL`` names an existing server instead.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

USER = "mailsmith"  # the database superuser of the throwaway cluster


def pg_bindir() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: on PATH, else Debian's newest
    /usr/lib/postgresql/<version>/bin; None when there are none."""
    on_path = shutil.which("initdb"), shutil.which("pg_ctl")
    if all(on_path):
        return Path(str(on_path[0])).parent
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
    )
    return Path(found[-1]).parent if found else None


@dataclass
class PgServer:
    """A running throwaway cluster."""

    url: str
    root: Path
    bindir: Path

    def stop(self) -> None:
        _run(self.bindir / "pg_ctl", "-D", str(self.root / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def start_server(bindir: Path) -> PgServer:
    """initdb + pg_ctl start on a free port of 127.0.0.1; see the module docstring."""
    root = Path(tempfile.mkdtemp(prefix="mailsmith-pg-"))
    if os.geteuid() == 0:
        _ensure_postgres_user()
        shutil.chown(root, "postgres", "postgres")
    data = root / "data"
    _run(
        bindir / "initdb",
        "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--locale=C", "-N",
    )  # fmt: skip
    port = _free_port()
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {root} -c fsync=off"
    _run(bindir / "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    return PgServer(f"postgresql://{USER}@127.0.0.1:{port}/postgres", root, bindir)


def _run(*command: object) -> None:
    args = [str(c) for c in command]
    if os.geteuid() == 0:
        args = ["runuser", "-u", "postgres", "--", *args]
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd="/")
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _ensure_postgres_user() -> None:
    if subprocess.run(["id", "postgres"], capture_output=True).returncode:
        subprocess.run(["useradd", "--system", "--no-create-home", "postgres"], check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
