"""A real PostgreSQL (Debian's package) for a test: a fresh cluster in a temp folder, on 127.0.0.1 and a free
port, password authentication over TCP, stopped by PID and deleted afterwards, whatever happens."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.processes import free_port, kill_session, spawn, wait_for

SUPERUSER = "postgres"


def bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: `make test` installs it (Debian: apt-get install postgresql)")
    return Path(found[-1]).parent


def _as_owner() -> list[str]:
    """initdb and postgres refuse to run as root: as root, run them as the package's ``postgres`` user."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def postgres(password: str) -> Iterator[int]:
    """A running server whose superuser ``postgres`` has ``password``; yields its port."""
    folder = Path(tempfile.mkdtemp(prefix="t2t-postgres-"))
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        pwfile = folder / "pw"
        pwfile.write_text(password)
        if os.geteuid() == 0:
            shutil.chown(pwfile, "postgres", "postgres")
        pwfile.chmod(0o600)
        subprocess.run(
            [*_as_owner(), str(bin_dir() / "initdb"), "-D", str(folder / "data"), "-U", SUPERUSER, f"--pwfile={pwfile}",
             "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "--encoding=UTF8", "--no-instructions"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        port = free_port()
        proc = spawn(
            [*_as_owner(), str(bin_dir() / "postgres"), "-D", str(folder / "data"), "-h", "127.0.0.1",
             "-p", str(port), "-k", str(folder)],
            folder / "server.log",
        )  # fmt: skip
        try:
            ready = ["pg_isready", "-q", "-h", "127.0.0.1", "-p", str(port)]
            wait_for(lambda: subprocess.run(ready, timeout=10).returncode == 0, 60, f"PostgreSQL on port {port}")
            yield port
        finally:
            kill_session(proc)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def query(port: int, password: str, database: str, sql: str) -> list[tuple]:
    import psycopg

    conn = psycopg.connect(host="127.0.0.1", port=port, user=SUPERUSER, password=password, dbname=database)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()
