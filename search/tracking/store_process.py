"""MLflow's client in a process of its own, so that the store's work never holds the driver's GIL.

An ``MlflowClient`` call spends its time in Python: SQLAlchemy's ORM for a ``sqlite://`` or database store,
``requests`` and JSON for a server. In the driver that time is taken from Tune's event loop, which waits for the
GIL while the tracker's writer thread holds it. ``StoreProcess`` runs the client in a child process: a call pickles
its arguments to it and waits on a socket (without the GIL) for the answer (what that saves at 1,000 trials:
benchmarks/README.md, section 10).

- ``StoreProcess(uri).log_batch(run_id, ...)`` is ``MlflowClient(uri).log_batch(run_id, ...)``, run there; its
  value, or its exception, comes back (an exception that cannot be pickled comes back as an ``MlflowException``
  with the same message and error code, or a ``RuntimeError`` naming its type).
- The child starts on the first call, or earlier with ``start()``, so that its imports of MLflow (seconds)
  overlap what the driver does meanwhile (it starts Ray). It opens the store at its first call: ``MlflowClient``
  makes a new SQLite file with its tables, and nothing is written before the driver has checked the search. If it
  dies, a call raises ``ConnectionError`` (the tracker's writer treats it as the store being away and retries)
  and the next call starts a new one.
- The child ignores SIGINT and SIGTERM (a terminal's Ctrl-C, or a kill of the process group, reaches every
  process in it: the driver decides how the search ends, delivers what it can, then closes the child). It ends
  by itself when the driver's end of the socket closes, so a driver killed with SIGKILL leaves no child behind.
  It has answered every call by then, so it closes the store's connections (SQLite merges its write-ahead log
  into the database file) and leaves without Python's 1.8 s of teardown.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
from functools import partial
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

_STOP_S = 10.0  # how long close() waits for the child to finish its call and exit before it is killed
_ROOT = str(Path(__file__).resolve().parents[2])  # the folder that holds the ``search`` package


class StoreProcess:
    """An ``MlflowClient`` for ``uri`` whose calls run in a child process, one call at a time."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)
        return partial(self._call, name)

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        """Start the child now (the first call otherwise does)."""
        with self._lock:
            if self._connection is None:
                self._start()

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            connection = self._connection or self._start()
            try:
                connection.send((name, args, kwargs))
                import mlflow.entities  # noqa: F401  the answers unpickle into these: imported while the child works

                ok, value = connection.recv()
            except (EOFError, OSError) as e:
                code = self._reap()
                raise ConnectionError(f"MLflow's store process ended (exit code {code}) during {name}") from e
            except BaseException:  # interrupted (Ctrl-C): its answer would be read as the next call's
                self._reap()
                raise
        if ok:
            return value
        raise value

    def _start(self) -> Connection:
        ours, theirs = socket.socketpair()
        path = os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p)
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "search.tracking.store_process", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": path},
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._connection = Connection(ours.detach())
        self._connection.send(self.uri)
        return self._connection

    def _reap(self, wait_s: float = _STOP_S) -> int | None:
        """Close the socket (the child exits when it reads the end) and wait for the child; kill it past ``wait_s``."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            return process.wait(wait_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def close(self) -> None:
        """Stop the child. A call still running in another thread ends with ``ConnectionError``."""
        if self._lock.acquire(timeout=_STOP_S):
            try:
                self._reap()
            finally:
                self._lock.release()
        elif self._process is not None:  # a call is stuck in the child: end it
            self._process.kill()


def _portable(error: Exception) -> Exception:
    """``error`` if it survives pickling, else an equivalent that does."""
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:
        pass
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import ErrorCode

    if isinstance(error, MlflowException):
        return MlflowException(str(error), error_code=ErrorCode.Value(error.error_code))
    return RuntimeError(f"{type(error).__name__}: {error}")


def serve(fd: int) -> None:
    """The child: answer calls until the driver closes its end."""
    for stop in (signal.SIGINT, signal.SIGTERM):  # sent to the process group: the driver decides, then closes us
        signal.signal(stop, signal.SIG_IGN)
    connection = Connection(fd)
    from mlflow.tracking import MlflowClient

    from search.disk.sqlite_wal import install

    install()  # as in the driver: a local SQLite store is written ahead
    client = None  # made at the first call: it opens the store (a new SQLite file gets its tables)
    try:
        uri = connection.recv()
        while True:
            name, args, kwargs = connection.recv()
            try:
                client = client or MlflowClient(uri)
                answer = (True, getattr(client, name)(*args, **kwargs))
            except Exception as e:
                answer = (False, _portable(e))
            try:
                connection.send(answer)
            except (pickle.PicklingError, TypeError, AttributeError) as e:  # a value that cannot be pickled
                connection.send((False, RuntimeError(f"{name} returned what cannot be sent back: {e}")))
    except (EOFError, OSError):  # the driver closed its end, or ended
        _leave(client)


def _leave(client: Any) -> None:
    """Close the store's connections and exit at once: every call is answered, nothing is left to finish."""
    engine = getattr(getattr(getattr(client, "_tracking_client", None), "store", None), "engine", None)
    try:
        if engine is not None:  # a database store (SQLAlchemy's): its last close checkpoints SQLite's log
            engine.dispose()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(0)


if __name__ == "__main__":
    serve(int(sys.argv[1]))
