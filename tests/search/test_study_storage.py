"""The study's SQLite file: write-ahead log on a local disk, SQLite's defaults on a network file system."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import optuna

from search.study_storage import on_network_file_system, open_storage


def _journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_local_study_file_is_written_ahead_and_keeps_every_trial(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/optuna.db")
    study = optuna.create_study(study_name="s", storage=storage)
    for value in range(3):
        study.tell(study.ask(), float(value))
    assert _journal_mode(tmp_path / "optuna.db") == "wal"
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
