"""A search's identity and its lock.

The id is made when a search starts and kept beside Tune's state (``search_id`` in the experiment folder, local or
``s3://``), with the config it runs (``search_config.json``). The parent run is found by it (tag ``search.id``), and
so is the driver's local folder when the results are remote: a new search under an old name never continues the
old one's runs or study; only ``--resume`` reuses an id. The lock lets one driver at a time run a search.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contract.files import LOCAL_STATE_ROOT, SEARCH_CONFIG, SEARCH_ID


def _fs(uri: str):
    from pyarrow import fs

    return fs.FileSystem.from_uri(uri if "://" in uri else str(Path(uri).resolve()))


def read_text(folder: str, name: str) -> str | None:
    """A small file in a local or remote folder; None when it is not there."""
    from pyarrow import fs

    filesystem, root = _fs(folder)
    path = f"{root.rstrip('/')}/{name}"
    if filesystem.get_file_info(path).type != fs.FileType.File:
        return None
    with filesystem.open_input_stream(path) as f:
        return f.read().decode()


def write_text(folder: str, name: str, text: str) -> None:
    """Write ``text`` to ``folder/name``, a local path or an ``s3://``-style URI (pyarrow's file systems)."""
    filesystem, root = _fs(folder)
    filesystem.create_dir(root, recursive=True)
    with filesystem.open_output_stream(f"{root.rstrip('/')}/{name}") as f:
        f.write(text.encode())


def saved_id(experiment_path: str) -> str | None:
    """The id saved beside the experiment at ``experiment_path``, or None."""
    text = read_text(experiment_path, SEARCH_ID)
    return text.strip() if text and text.strip() else None


def saved_config(experiment_path: str) -> dict[str, Any] | None:
    """The config a search was started with, from its experiment folder."""
    text = read_text(experiment_path, SEARCH_CONFIG)
    return json.loads(text) if text else None


@dataclass(frozen=True)
class SearchIdentity:
    """A search's id, where its experiment is, and the driver's local folder (the study, undelivered writes)."""

    search_id: str
    experiment_path: str
    local_dir: Path  # the driver's own files: the study, undelivered MLflow writes

    @classmethod
    def begin(cls, experiment_path: str, local_experiment_dir: Path | None, config: dict[str, Any]) -> SearchIdentity:
        """A new search: a new id, written with the config beside where Tune's state will be."""
        identity = cls._at(uuid.uuid4().hex, experiment_path, local_experiment_dir)
        write_text(experiment_path, SEARCH_CONFIG, json.dumps(config, indent=1))
        write_text(experiment_path, SEARCH_ID, identity.search_id + "\n")
        return identity

    @classmethod
    def find(cls, experiment_path: str, local_experiment_dir: Path | None) -> SearchIdentity | None:
        """The search an experiment folder holds (a resume); None if it has no id."""
        text = saved_id(experiment_path)
        return cls._at(text, experiment_path, local_experiment_dir) if text else None

    @classmethod
    def _at(cls, search_id: str, experiment_path: str, local_experiment_dir: Path | None) -> SearchIdentity:
        name = experiment_path.rstrip("/").rsplit("/", 1)[-1]
        local = local_experiment_dir or Path(LOCAL_STATE_ROOT).resolve() / f"{name}-{search_id[:8]}"
        local.mkdir(parents=True, exist_ok=True)
        return cls(search_id, experiment_path, local)


class LockedError(RuntimeError):
    """Another driver runs this search."""


class SearchLock:
    """An exclusive lock on one experiment path, held by this process until it exits (the OS drops it then, also
    for a killed driver). On this machine only: two machines driving one s3:// path are not seen."""

    def __init__(self, experiment_path: str) -> None:
        digest = hashlib.sha1(experiment_path.encode()).hexdigest()[:16]
        folder = Path(tempfile.gettempdir()) / "t2t-search-locks"
        folder.mkdir(exist_ok=True)
        self.path = folder / f"{experiment_path.rstrip('/').rsplit('/', 1)[-1]}-{digest}.lock"
        self.experiment_path = experiment_path
        self._file = None

    def acquire(self) -> SearchLock:
        """Take the lock, or raise ``LockedError`` naming the pid of the driver that holds it."""
        handle = open(self.path, "a+")  # noqa: SIM115 -- held open for the driver's lifetime
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "?"
            handle.close()
            raise LockedError(
                f"another driver (pid {holder}) is running the search at {self.experiment_path}: wait for it to end, "
                "or give another --name"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        self._file = handle
        return self

    def release(self) -> None:
        """Drop the lock (the OS drops it too when the process ends, however it ends)."""
        if self._file is not None:
            self._file.close()  # closing drops the lock
            self._file = None
