"""``check_storage`` on a real local Ray: a path every node sees passes and leaves nothing behind; a path the
driver cannot write is a one-line StorageError. (A node that cannot see the path: tests/cluster/test_multinode.py.)"""

from __future__ import annotations

import pytest

from search.cluster.storage import StorageError, check_storage


def test_a_shared_path_passes_and_is_left_clean(ray_local, tmp_path):
    check_storage(str(tmp_path / "results"))
    assert (tmp_path / "results").is_dir() and list((tmp_path / "results").iterdir()) == []


def test_a_path_the_driver_cannot_write_is_a_storage_error(ray_local, tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    with pytest.raises(StorageError, match=r"cannot write to storage path .*a-file/results"):
        check_storage(str(tmp_path / "a-file" / "results"))
