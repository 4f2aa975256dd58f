"""The MLflow writes a search has queued that MLflow has not yet taken, in a file in the driver's local folder.

A write is appended as it is queued (a line of JSON, no ``fsync``: a killed driver loses none, a power cut the
last ones), and each delivery appends how many of the oldest writes MLflow took (``{"delivered": N}``); the file
is emptied whenever everything is delivered. Only a new driver rewrites it, aside and renamed over it, so a kill
at any moment leaves complete lines that say what was queued and not yet taken. The next driver of the search
(``--resume``, ``python -m search.deliver``) queues those ahead of its own. So a driver killed while MLflow was
away, or a moment behind the trials, loses none of the epochs and ends that Tune's snapshot and the study have.
Writes are idempotent (``search.tracking.writes.deliver``): one delivered just before a kill may go out twice.

A write to the file that fails (a full disk) empties it, and it is kept again from the next time the queue is
empty: a file that lacks writes is never replayed. Searches before this file kept what was left at their end
as a JSON list (``contract.files.PENDING_WRITES_LIST``); it is read too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from contract.files import PENDING_WRITES_LIST
from search.tracking.writes import Write, from_json

log = logging.getLogger(__name__)

DELIVERED = "delivered"  # the key of a line that counts the writes MLflow took


def _line(entry: dict) -> str:
    return json.dumps(entry, default=str) + "\n"


class PendingWrites:
    """The file of undelivered writes at ``path`` (``None``: none is kept). Not thread-safe: the tracker calls
    it under its own lock."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._file = None
        self._active = False  # started by this process: the file is its to change
        self._broken = False  # a write to the file failed: it is empty, and kept again once the queue is

    def exists(self) -> bool:
        """Whether an earlier driver left writes undelivered (in either file format)."""
        return self.path is not None and (self.path.is_file() or self.path.with_name(PENDING_WRITES_LIST).is_file())

    def load(self) -> list[Write]:
        """What earlier drivers left undelivered, in order; a line a kill cut short is left out."""
        if self.path is None:
            return []
        writes = self._list()
        try:
            lines = self.path.read_text(errors="replace").splitlines() if self.path.is_file() else []
        except OSError as e:
            self._fail(e, remove=False)  # left as it is, for a driver that can read it
            return writes
        if lines:
            queued, delivered = [], 0
            for line in lines:
                try:
                    entry = json.loads(line)
                    if DELIVERED in entry:
                        delivered += int(entry[DELIVERED])
                    else:
                        queued.append(from_json(entry))
                except (ValueError, KeyError, TypeError):
                    log.warning("a line of %s is not a write (cut short by a killed driver?): skipped", self.path)
            writes += queued[delivered:]
        return writes

    def start(self, queue: list[Write]) -> None:
        """This driver's file: it holds exactly ``queue`` (the earlier files' writes: written aside and renamed
        over the file, so a kill now loses nothing), and this driver's writes are appended."""
        if self.path is None or self._broken:
            return
        self._active = True
        try:
            if queue:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                aside = self.path.with_name(self.path.name + ".tmp")
                aside.write_text("".join(_line(w.to_json()) for w in queue), encoding="utf-8")
                os.replace(aside, self.path)
            else:
                self.path.unlink(missing_ok=True)
            self.path.with_name(PENDING_WRITES_LIST).unlink(missing_ok=True)
        except OSError as e:
            self._fail(e)

    def append(self, write: Write) -> None:
        """Keep a queued write, as its line, before it is delivered."""
        self._append(_line(write.to_json()))

    def delivered(self, count: int, left: int) -> None:
        """MLflow took the ``count`` oldest writes; ``left`` are still queued."""
        if left:
            self._append(_line({DELIVERED: count}))
            return
        if not self._active:
            return
        try:
            if self._file is not None or self.path.exists():
                self._handle().truncate(0)  # appends go on at the (new) end
            self._broken = False  # empty, as the queue is: the file says the truth again
        except OSError as e:
            self._fail(e)

    def close(self, queue: list[Write]) -> bool:
        """The driver ends with ``queue`` undelivered: the file is gone if that is empty. Whether the file holds
        the queue."""
        if not self._active:
            return False
        self._close_file()
        if not queue:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)
            return False
        if self._broken:
            self._broken = False
            self.start(queue)  # one more try: the disk may have room again
        return not self._broken

    def _append(self, text: str) -> None:
        if not self._active or self._broken:
            return
        try:
            file = self._handle()
            file.write(text)
            file.flush()  # in the kernel's hands: a killed process loses nothing
        except OSError as e:
            self._fail(e)

    def _handle(self):
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        return self._file

    def _fail(self, error: OSError, remove: bool = True) -> None:
        self._broken = True
        log.warning("MLflow's undelivered writes are not kept in %s for now (%s): a driver killed before MLflow "
                    "has taken them would lose them", self.path, error)  # fmt: skip
        self._close_file()
        if remove:
            with contextlib.suppress(OSError):
                self.path.unlink(missing_ok=True)  # a file that lacks writes must not be replayed

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _list(self) -> list[Write]:
        """An older search's writes, left as a JSON list at its end."""
        old = self.path.with_name(PENDING_WRITES_LIST)
        if not old.is_file():
            return []
        try:
            return [from_json(w) for w in json.loads(old.read_text())]
        except (ValueError, KeyError, TypeError) as e:
            log.warning("%s is not a list of writes (%s): skipped", old, e)
            return []
