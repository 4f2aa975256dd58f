"""The study's storage, opened so that writing it costs Tune's event loop as little as the disk allows.

A search's study is an Optuna journal file (``optuna.journal`` in the driver's local folder): each write appends a
line (without Optuna's ``fsync`` per write), and a read replays only the lines it has not seen. In SQLite every
ask re-reads the running trials with all their attributes, a cost that grows with the trials at once (the journal
against SQLite, with and without ``search.disk.sqlite_wal``: benchmarks/README.md, section 10). optuna-dashboard reads
the journal by its path; its lock (a symbolic link, Optuna's default) also works on a network file system.

An RDB URL (``sqlite:///...``, ``postgresql://...``) is still a study: ``search.warm_start`` may name one.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock

import search.disk.sqlite_wal
from contract.files import STUDY_DB, STUDY_JOURNAL


def study_location(folder: Path) -> str:
    """The study of the search whose driver's local folder is ``folder``: its journal, or the SQLite file of a
    search an earlier t2t-search started there (so that ``--resume`` continues that study)."""
    journal, old = folder / STUDY_JOURNAL, folder / STUDY_DB
    return f"sqlite:///{old}" if old.is_file() and not journal.exists() else str(journal)


def open_storage(location: str, writer: bool = False) -> optuna.storages.BaseStorage:
    """The study at ``location``: a journal file's path, or an RDB URL. The ``writer`` (the driver, which alone
    writes a search's study) first drops a line that a killed writer left cut short: Optuna would refuse every
    line appended after it."""
    if "://" in location:
        return _rdb(location)
    if writer:
        drop_cut_line(Path(location))
    return optuna.storages.JournalStorage(UnsyncedJournalFile(location))


class UnsyncedJournalFile(JournalFileBackend):
    """Optuna's journal file, appended without an ``fsync`` per write (that wait was a tenth of Tune's loop at 300
    short trials). As with ``search.disk.sqlite_wal``: a killed process loses no write, a power cut the last ones."""

    def __init__(self, path: str) -> None:
        self.path, self.lock = path, JournalFileSymlinkLock(path)
        super().__init__(path, lock_obj=self.lock)

    def append_logs(self, logs: list[dict]) -> None:
        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)  # Optuna's own format
        self.lock.acquire()
        try:
            with open(self.path, "ab") as f:
                f.write(text.encode("utf-8"))
        finally:
            self.lock.release()


def drop_cut_line(path: Path) -> None:
    """Truncate a journal after its last complete line (it is appended whole, so only the last can be cut)."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with path.open("rb+") as f:
        f.seek(-1, 2)
        if f.read(1) == b"\n":
            return
        f.seek(0)
        f.truncate(f.read().rfind(b"\n") + 1)


def _rdb(url: str) -> optuna.storages.RDBStorage:
    search.disk.sqlite_wal.install()  # a SQLite file on a local disk is written ahead
    return optuna.storages.RDBStorage(url)
