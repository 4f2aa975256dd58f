"""The study's storage: a journal that a killed writer cannot break, a search of an earlier t2t-search's SQLite
file, and an RDB file written ahead on a local disk (SQLite's defaults on a network file system)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from contract.files import STUDY_DB, STUDY_JOURNAL
from search.disk.sqlite_wal import on_network_file_system
from search.study.storage import open_storage, study_location
from tests.search.stores import ROOT


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def _study(location: str, writer: bool = False) -> optuna.Study:
    return optuna.create_study(study_name="s", storage=open_storage(location, writer), load_if_exists=True)


def test_a_line_a_killed_writer_cut_short_is_dropped_and_the_study_goes_on(tmp_path):
    journal = str(tmp_path / STUDY_JOURNAL)
    study = _study(journal)
    for value in range(2):
        study.tell(study.ask(), float(value))
    with open(journal, "ab") as f:
        f.write(b'{"op_code": 4, "worker_id": "x", "study_id": 0')  # a write killed midway
    study = _study(journal, writer=True)
    study.tell(study.ask(), 2.0)
    assert [t.value for t in _study(journal).trials] == [0.0, 1.0, 2.0]  # a reader replays every line


def test_a_search_keeps_the_study_file_it_began_with(tmp_path):
    assert study_location(tmp_path) == str(tmp_path / STUDY_JOURNAL)
    (tmp_path / STUDY_DB).touch()  # a search an earlier t2t-search began here: its SQLite study goes on
    assert study_location(tmp_path) == f"sqlite:///{tmp_path / STUDY_DB}"
    (tmp_path / STUDY_JOURNAL).touch()
    assert study_location(tmp_path) == str(tmp_path / STUDY_JOURNAL)


WRITE = """
import sys, optuna
from mlflow.tracking import MlflowClient
from search.disk.sqlite_wal import install
from search.study.storage import open_storage
if sys.argv[2] == "install":
    install()
MlflowClient(f"sqlite:///{sys.argv[1]}/mlflow.db").create_experiment("x")
study = optuna.create_study(study_name="s", storage=open_storage(f"sqlite:///{sys.argv[1]}/optuna.db"))
for value in range(3):
    study.tell(study.ask(), float(value))
"""


@pytest.mark.processes
@pytest.mark.parametrize("install", ["install", "no"])
def test_the_drivers_sqlite_files_on_a_local_disk_are_written_ahead(tmp_path, install):
    subprocess.run([sys.executable, "-c", WRITE, str(tmp_path), install], check=True, cwd=ROOT, timeout=120)
    assert _journal_mode(tmp_path / "mlflow.db") == ("wal" if install == "install" else "delete")
    assert _journal_mode(tmp_path / "optuna.db") == "wal"  # an RDB study installs it itself
    again = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path}/optuna.db")  # another connection
    assert [t.value for t in again.trials] == [0.0, 1.0, 2.0]


TABLE = """/dev/vda / ext4 rw 0 0
server:/export /mnt/shared nfs4 rw 0 0
/dev/vdb /mnt/shared/local ext4 rw 0 0
sshfs#me@host: /mnt/remote fuse.sshfs rw 0 0
"""


def test_the_innermost_mount_decides_what_is_a_network_file_system():
    assert not on_network_file_system(Path("/work/ray_results"), TABLE)
    assert on_network_file_system(Path("/mnt/shared/ray_results"), TABLE)
    assert not on_network_file_system(Path("/mnt/shared/local/ray_results"), TABLE)  # a disk mounted inside it
    assert on_network_file_system(Path("/mnt/remote/x"), TABLE)
    assert not on_network_file_system(Path("/mnt/sharedx"), TABLE)  # a name that only starts like a mount point
