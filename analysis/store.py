"""Whether an MLflow tracking URI names a real, persistent, writable store, found before anything is written.

MLflow accepts URIs that lose everything (an in-memory sqlite: ``sqlite:///`` with an empty path, ``sqlite://``)
and fails late, with tracebacks, on others (an sqlite path that is a folder or not a database, a database driver
that is not installed, an unknown scheme). ``check_store`` turns each into one line naming the URI and the fix.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from urllib.parse import urlsplit

from contract.redact import redact
from contract.tracking import DEFAULT_TRACKING_URI

_DATABASES = ("postgresql", "mysql", "mssql")  # MLflow's SQLAlchemy stores besides sqlite
_PACKAGES = {
    "MySQLdb": "mysqlclient",
    "psycopg2": "psycopg2-binary",
}  # pip package of a driver module, where it differs
_SQLITE_MAGIC = b"SQLite format 3\x00"


class StoreError(ValueError):
    """The tracking store cannot hold a search; the message is one line."""


def check_store(uri: str, timeout_s: float = 10.0, must_exist: bool = False) -> None:
    """Raise ``StoreError`` unless ``uri`` is a usable store; ``must_exist``: only read, never create (reports)."""
    scheme = urlsplit(uri).scheme.split("+")[0]
    if scheme == "sqlite":
        check_sqlite(uri, must_exist)
    elif scheme in ("http", "https"):
        check_server(uri, timeout_s)
    elif scheme in _DATABASES:
        check_driver(uri)
        check_database(uri, timeout_s)
    elif uri.startswith(("http//", "https//", "sqlite//")):
        raise StoreError(f"tracking URI {uri} lacks the ':' after its scheme: write {uri.replace('//', '://', 1)}")
    elif scheme in ("", "file") and os.environ.get("MLFLOW_ALLOW_FILE_STORE", "") != "true":
        raise StoreError(
            f"tracking URI {uri!r} is a plain path, MLflow's legacy file store, which MLflow 3.7+ refuses: use "
            f"{DEFAULT_TRACKING_URI} (the default), sqlite:///PATH or http://HOST:PORT"
        )
    elif scheme not in ("", "file", "databricks"):
        raise StoreError(
            f"tracking URI {uri}: unknown scheme {scheme!r}: use sqlite:///PATH, http(s)://HOST:PORT or "
            "postgresql://..."
        )


def check_driver(uri: str) -> None:
    """The database driver SQLAlchemy picks for ``uri`` (its default differs between releases) is installed."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(uri).get_dialect().import_dbapi()
    except (ArgumentError, NoSuchModuleError, ValueError) as e:
        raise StoreError(f"tracking URI {uri} is not a database URL SQLAlchemy knows ({e})") from None
    except ImportError as e:
        package = _PACKAGES.get(e.name or "", e.name)
        raise StoreError(
            f"tracking URI {uri}: its database driver {e.name!r} is not installed: pip install {package}"
        ) from None


def check_database(uri: str, timeout_s: float) -> None:
    """The database answers, within ``timeout_s`` (its driver's own connect timeout)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(uri, connect_args={"connect_timeout": max(1, int(timeout_s))})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as e:  # refused, unknown host, bad credentials, no such database: all mean not usable
        reason = " ".join(str(getattr(e, "orig", e)).split())[:200]
        raise StoreError(
            f"cannot connect to the tracking database {redact(uri)} ({reason}): start it, or fix MLFLOW_TRACKING_URI"
        ) from None
    finally:
        engine.dispose()


def check_sqlite(uri: str, must_exist: bool) -> None:
    """A file path after ``sqlite:///``: not in memory, not a folder, a database (or creatable) and writable."""
    rest = uri.split(":", 1)[1]
    path = rest[3:] if rest.startswith("///") else None
    memory = rest in ("//", "///") or path == ":memory:" or rest.startswith("///?")
    if memory or path is None:
        raise StoreError(
            f"tracking URI {uri} is {'an in-memory' if memory else 'not a file'} sqlite store "
            f"(everything is lost at exit): write sqlite:///PATH/mlflow.db (three slashes, then a path)"
        )
    file = Path(path.split("?")[0]).expanduser()
    if file.is_dir():
        raise StoreError(f"tracking URI {uri}: {file} is a folder, not a database file: add /mlflow.db")
    if file.exists():
        with file.open("rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
        if head and head != _SQLITE_MAGIC:
            raise StoreError(f"tracking URI {uri}: {file} is not an sqlite database: give another path")
        if not must_exist and not os.access(file, os.W_OK):
            raise StoreError(f"tracking URI {uri}: {file} is read-only: make it writable or give another path")
        if head:
            _check_opens(uri, file)
    elif must_exist:
        raise StoreError(f"tracking URI {uri}: no database at {file}: give the --tracking-uri the search used")
    else:
        folder = file.resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise StoreError(f"cannot write the MLflow store {uri}: folder {folder} is missing or read-only")


def _check_opens(uri: str, file: Path) -> None:
    try:
        with sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=5) as db:
            db.execute("select count(*) from sqlite_master").fetchone()
    except sqlite3.DatabaseError as e:
        raise StoreError(f"tracking URI {uri}: {file} cannot be read as a database ({e})") from None


def check_server(uri: str, timeout_s: float) -> None:
    """The server answers its health check within ``timeout_s``."""
    import requests

    try:
        requests.get(f"{uri.rstrip('/')}/health", timeout=timeout_s).raise_for_status()
    except requests.RequestException as e:
        raise StoreError(
            f"cannot reach the MLflow tracking server at {uri} ({type(e).__name__}): start it, or set "
            f"MLFLOW_TRACKING_URI / --tracking-uri to a reachable server or to {DEFAULT_TRACKING_URI}"
        ) from None
