"""A data set on shared storage (``data.root`` = ``s3://...``, ``gs://...``, any URI pyarrow's file systems read, as
Ray's storage does), copied once per node into a local cache, then read from local disk.

Every trial on a node asks for the copy; an exclusive file lock makes one of them copy while the others wait, then
find it ready. A copy goes into a temporary folder and is renamed into place only once every file arrived with the
size the storage lists, so a copy killed half way is never used: the next trial removes it and copies again. Each
version of the data (its listing: names and sizes) gets a copy of its own, so a copy that trials may still read is
never replaced; old versions stay until the cache is cleaned. A change that keeps every name and size is not seen.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from urllib.parse import urlparse

from contract.redact import redact

log = logging.getLogger(__name__)

CACHE_ENV = "T2T_DATA_CACHE"  # where a node keeps its copies; default ~/.cache/t2t-search/data
MANIFEST = ".t2t-staged.json"  # in a finished copy: each file's path and size as the storage listed them
LOCK_WAIT_S = 6 * 3600.0  # a trial waits this long for another's copy (a large data set over a slow link)


class StagingError(RuntimeError):
    """A data URI that cannot be read, or a copy that did not arrive whole."""


def is_remote(root: str) -> bool:
    """Whether ``data.root`` names shared storage (a URI with a scheme other than ``file``) rather than a folder."""
    scheme, sep, _ = root.partition("://")
    return bool(sep) and scheme not in ("", "file")


def cache_dir() -> Path:
    """This node's folder of staged copies."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "t2t-search" / "data").expanduser()


def _open(uri: str):
    """(file system, path) of ``uri``; a URI pyarrow cannot open is a ``StagingError`` naming it."""
    import pyarrow.fs as pafs

    try:
        return pafs.FileSystem.from_uri(uri)
    except Exception as e:
        raise StagingError(
            f"data.root {redact(uri)} cannot be opened ({redact(str(e))}): "
            "give an s3://, gs:// or other URI that pyarrow reads"
        ) from e


def listing(uri: str) -> dict[str, int]:
    """Each file under ``uri`` (relative path -> size); a ``StagingError`` when there is no folder or it is empty."""
    import pyarrow.fs as pafs

    fs, path = _open(uri)
    try:
        info = fs.get_file_info(path)
        if info.type != pafs.FileType.Directory:
            what = "does not exist" if info.type == pafs.FileType.NotFound else "is a file, not a folder,"
            raise StagingError(f"data.root {redact(uri)} {what} on its storage: give the folder that holds the data")
        files = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except StagingError:
        raise
    except Exception as e:  # credentials, endpoint, permissions
        raise StagingError(
            f"data.root {redact(uri)} cannot be read ({redact(str(e))}): check the storage's credentials and endpoint "
            "(AWS_ENDPOINT_URL and the other AWS_* variables for S3)"
        ) from e
    out = {f.path[len(path) :].lstrip("/"): f.size for f in files if f.type == pafs.FileType.File}
    if not out:
        raise StagingError(f"data.root {redact(uri)} holds no files")
    return out


@functools.lru_cache(maxsize=8)
def cached_listing(uri: str) -> dict[str, int]:
    """``listing`` once per process: what the driver reads of a data set's layout (its classes, whether it has a test
    split) on every model it prices."""
    return listing(uri)


def lock_file(uri: str, cache: Path) -> Path:
    """The lock every process on this node takes to copy ``uri``, or to find its copy whole."""
    key = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    return cache / f"{_name(uri)}-{key}.lock"


def _name(uri: str) -> str:
    return urlparse(uri).path.rstrip("/").rsplit("/", 1)[-1] or "data"  # never the credentials of a URI


def stage(uri: str, cache: Path | None = None) -> Path:
    """The local copy of ``uri`` on this node: made now if there is none whole, else the one there."""
    cache = cache or cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    lock_path = lock_file(uri, cache)
    with open(lock_path, "w") as lock:
        _lock(lock, uri)
        files = listing(uri)
        # A copy per version of the data (its listing): one that trials may still read is never replaced.
        version = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:12]
        target = lock_path.with_name(f"{lock_path.stem}-{version}")
        if not _whole(target, files):
            _copy(uri, files, target)
    return target


def _lock(lock, uri: str) -> None:
    """Hold the copy's lock (released when this process ends, however it ends), waiting at most ``LOCK_WAIT_S``."""
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StagingError(
                    f"another process on this node has been copying {redact(uri)} for {LOCK_WAIT_S:.0f} s: "
                    "see its trial's log"
                ) from None
            time.sleep(1.0)


def _whole(target: Path, files: dict[str, int]) -> bool:
    """Whether ``target`` is a finished copy of exactly ``files``, each still there with its size."""
    try:
        finished = json.loads((target / MANIFEST).read_text()) == files
    except (OSError, ValueError):
        return False
    return finished and all(_size(target / name) == size for name, size in files.items())


def _size(path: Path) -> int | None:
    return path.stat().st_size if path.is_file() else None


def _copy(uri: str, files: dict[str, int], target: Path) -> None:
    """Copy ``uri`` beside ``target``, check every file's size, then rename it into place (replacing a stale copy)."""
    import pyarrow.fs as pafs

    fs, path = _open(uri)
    partial = target.with_name(f"{target.name}.partial")
    for leftover in (partial, target):  # a copy killed half way, or this version's copy with a file cut short
        shutil.rmtree(leftover, ignore_errors=True)
    partial.mkdir()
    pafs.copy_files(path, str(partial), source_filesystem=fs, destination_filesystem=pafs.LocalFileSystem())
    wrong = [name for name, size in files.items() if _size(partial / name) != size]
    if wrong:
        raise StagingError(f"the copy of {redact(uri)} lacks or cut short {len(wrong)} file(s), e.g. {wrong[0]}")
    (partial / MANIFEST).write_text(json.dumps(files))
    partial.rename(target)
    log.info(
        "copied %s to %s on this node (%d files, %.1f MB)", redact(uri), target, len(files), sum(files.values()) / 1e6
    )
