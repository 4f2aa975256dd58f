"""The file of MLflow writes not yet delivered (search.tracking.pending): what a killed driver leaves is what MLflow
lacks."""

from __future__ import annotations

import json
import logging
import subprocess

import pytest

from contract.files import PENDING_WRITES, PENDING_WRITES_LIST
from contract.status import COMPLETED
from search.tracking.pending import PendingWrites
from search.tracking.writes import EndRun, LogEpoch, StartTrial


def _writes() -> list:
    return [StartTrial("t1", {"model": {"depth": 3}}), LogEpoch("t1", {"epoch": 1, "val_acc": 0.5}),
            EndRun("t1", COMPLETED)]  # fmt: skip


def _started(path) -> PendingWrites:
    pending = PendingWrites(str(path))
    pending.start(pending.load())
    return pending


def test_what_a_driver_leaves_is_what_it_queued_less_what_mlflow_took(tmp_path):
    path = tmp_path / PENDING_WRITES
    pending = _started(path)
    start, epoch, end = _writes()
    for write in (start, epoch, end):
        pending.append(write)
    pending.delivered(2, left=1)  # the start and the epoch went out: killed now
    assert PendingWrites(str(path)).load() == [end]
    pending.delivered(1, left=0)  # everything went out: the file is emptied, not removed
    assert path.read_text() == "" and PendingWrites(str(path)).load() == []
    pending.append(start)
    pending.close([start])  # ends with the start undelivered: it stays
    assert PendingWrites(str(path)).load() == [start]
    again = _started(path)
    again.close([])  # the next driver delivered it: no file
    assert not path.exists()


def test_a_line_cut_short_by_a_kill_is_skipped_and_the_next_driver_starts_a_clean_file(tmp_path, caplog):
    path, writes = tmp_path / PENDING_WRITES, _writes()
    pending = _started(path)
    for write in writes:
        pending.append(write)
    with path.open("a") as f:
        f.write('{"kind": "epoch", "trial_id": "t1", "ro')
    with caplog.at_level(logging.WARNING, logger="search.tracking.pending"):
        again = _started(path)
    assert "cut short" in caplog.text
    assert again.load() == writes  # the file now holds exactly those, every line whole
    again.append(EndRun("t2", COMPLETED))
    assert PendingWrites(str(path)).load() == [*writes, EndRun("t2", COMPLETED)]


def test_an_older_searchs_list_is_delivered_first_and_moved_into_the_file(tmp_path):
    path, old = tmp_path / PENDING_WRITES, tmp_path / PENDING_WRITES_LIST
    start, epoch, end = _writes()
    old.write_text(json.dumps([w.to_json() for w in (start, epoch)], indent=1))
    path.write_text(json.dumps(end.to_json()) + "\n")
    pending = PendingWrites(str(path))
    assert pending.exists()
    queue = pending.load()
    assert queue == [start, epoch, end]
    pending.start(queue)
    assert not old.exists() and PendingWrites(str(path)).load() == queue


@pytest.mark.processes
def test_a_full_disk_removes_the_file_and_it_is_kept_again_once_the_queue_is_empty(tmp_path, caplog):
    folder = tmp_path / "small"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], check=True)
    try:
        path, filler = folder / PENDING_WRITES, folder / "filler"
        pending = _started(path)
        start, epoch, end = _writes()
        pending.append(start)
        with filler.open("wb", buffering=0) as f:
            for _ in range(100):  # 64 KiB: it is full long before
                try:
                    f.write(b"x" * 4096)
                except OSError:
                    break
        with caplog.at_level(logging.WARNING, logger="search.tracking.pending"):
            for _ in range(100):  # more than the file's last page holds
                pending.append(epoch)
        assert caplog.text.count("not kept") == 1  # one warning, and no exception into Tune's loop
        assert not path.exists()  # a file that lacks writes is never replayed
        filler.unlink()
        pending.delivered(101, left=0)  # the queue is empty: the file tells the truth again
        pending.append(end)
        assert PendingWrites(str(path)).load() == [end]
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
