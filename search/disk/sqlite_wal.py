"""The driver's SQLite files (an MLflow store at ``sqlite:///``, a study in an RDB file) written ahead.

Every connection the driver opens to a SQLite file on a local disk runs in write-ahead-log mode with
``synchronous=NORMAL``: a commit no longer waits for the disk (what that saves: benchmarks/README.md, section 10).
A killed process still loses no committed write; only a power cut can lose the last ones. WAL mode stays with the file
(readers such as ``mlflow ui`` follow it); not on a network file system, where SQLite's WAL would need every reader on
the same host.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

NETWORK_FILE_SYSTEMS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "lustre", "gpfs", "ceph", "glusterfs", "fuse")

_installed = False


def on_network_file_system(path: Path, table: str | None = None) -> bool:
    """Whether ``path`` lies on a network file system, by the mount ``table`` (default Linux's; none: no)."""
    try:
        table = Path("/proc/self/mounts").read_text() if table is None else table
    except OSError:
        return False
    mounts = [line.split()[1:3] for line in table.splitlines() if len(line.split()) >= 3]
    resolved = str(path.resolve())
    inside = [(p, kind) for p, kind in mounts if resolved == p or resolved.startswith(p.rstrip("/") + "/")]
    kind = max(inside, key=lambda mount: len(mount[0]), default=("/", ""))[1]  # the innermost mount
    return kind.split(".")[0] in NETWORK_FILE_SYSTEMS


def _write_ahead(connection, _record) -> None:
    if not isinstance(connection, sqlite3.Connection):
        return
    files = [row[2] for row in connection.execute("PRAGMA database_list") if row[1] == "main"]
    if not files or not files[0] or on_network_file_system(Path(files[0]).parent):
        return  # in memory, or shared over the network
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")


def install() -> None:
    """From now on, in this process, every new SQLAlchemy connection to a local SQLite file is written ahead.
    Call it before the stores are first opened: connections already pooled keep SQLite's defaults."""
    global _installed
    if not _installed:
        import sqlalchemy

        sqlalchemy.event.listen(sqlalchemy.engine.Engine, "connect", _write_ahead)
        _installed = True
