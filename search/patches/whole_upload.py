"""Tune's files reach a local storage folder whole or not at all.

Ray 2.60's syncer uploads the driver's staging folder (``experiment_state-*.json``, the searcher's state,
``tuner.pkl``) to the storage folder with pyarrow's ``copy_files``, which writes each file in place. A driver killed,
or a disk filled, during the copy leaves the storage's copy cut short, and the next ``--resume`` cannot read it (an
empty ``final/experiment_state-*.json`` was seen after a kill in the final phase). Patched, on a local file system
(a shared one included): each file is copied beside its destination and replaces it once complete. An object store
already writes an object whole, so remote storage keeps Ray's own upload.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from search.patches._patch import ray_patch

_TMP_PREFIX = ".uploading-"


def _replace(source: Path, destination: Path) -> None:
    """``destination`` becomes a copy of ``source`` in one step: never a part of it."""
    tmp = destination.with_name(_TMP_PREFIX + destination.name)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)


def _make(original):
    import pyarrow.fs

    def _upload_to_fs_path(local_path: str, fs, fs_path: str, exclude=None) -> None:
        if exclude or not isinstance(fs, pyarrow.fs.LocalFileSystem):
            return original(local_path, fs, fs_path, exclude)
        source, destination = Path(local_path), Path(fs_path)
        if source.is_file():
            destination.parent.mkdir(parents=True, exist_ok=True)
            return _replace(source, destination)
        destination.mkdir(parents=True, exist_ok=True)
        for path in sorted(source.rglob("*")):  # a folder before what it holds
            target = destination / path.relative_to(source)
            if path.is_dir():
                target.mkdir(exist_ok=True)
            else:
                _replace(path, target)
        return None

    return _upload_to_fs_path


PATCH = ray_patch(
    name="whole_upload",
    target="ray.train._internal.storage:_upload_to_fs_path",
    make=_make,
    fingerprints={
        "ray.train._internal.storage:_upload_to_fs_path": "8c45fecaef90f0cb",
        "ray.train._internal.storage:_FilesystemSyncer._sync_up_command": "d31bd531ee857d7c",
    },
    upstream="no upstream report found (searched 2026-12): pyarrow's copy_files writes in place",
)
