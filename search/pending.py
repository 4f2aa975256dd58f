"""The MLflow writes a search has queued that MLflow has not yet taken, in a file in the driver's local folder.

A write is appended as it is queued (a line of JSON, no ``fsync``: a killed driver loses none, a power cut the
last ones) and the file is emptied whenever the tracker has delivered everything. The next driver of the search
(``--resume``, ``python -m search.deliver``) delivers what the file holds before anything else. So a driver
killed while MLflow was away (or a fraction of a second behind it) loses none of the epochs and ends that Tune's
snapshot and the study already have. Writes are idempotent (``search.writes.deliver``): those delivered just
before a kill may go out twice and change nothing.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path

from search.writes import Write, from_json

log = logging.getLogger(__name__)

# Delivered lines the file may hold beyond the queue before it is rewritten: a busy tracker whose queue never
# empties would otherwise grow it for the whole search, and a resume would deliver all of it again.
_SLACK = 1000


class PendingWrites:
    """The file of undelivered writes at ``path`` (``None``: none is kept). Not thread-safe: the tracker calls
    it under its own lock."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None
        self._file = None
        self._lines = 0  # lines in the file
        self._failed = False  # a write to it failed (a full disk): kept in memory only from then on

    def load(self) -> list[Write]:
        """What an earlier driver left, in order; a last line cut short by a kill is dropped."""
        if self.path is None or not self.path.is_file():
            return []
        writes = []
        for line in self.path.read_text(errors="replace").splitlines():
            try:
                writes.append(from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                log.warning("a line of %s is not a write (cut short by a killed driver?): skipped", self.path)
        return writes

    def rewrite(self, writes: Iterable[Write]) -> None:
        """The file holds exactly ``writes`` (no file is made for none)."""
        writes = list(writes)
        if writes or self._file is not None or (self.path is not None and self.path.exists()):
            self._write(writes, mode="w")

    def append(self, write: Write) -> None:
        self._write([write], mode="a")

    def delivered(self, queue: list[Write]) -> None:
        """The tracker delivered writes and ``queue`` is what is left: empty the file, or rewrite it with the queue
        once it holds many delivered lines."""
        if not queue or self._lines > len(queue) + _SLACK:
            self.rewrite(queue)

    def close(self, queue: Iterable[Write]) -> None:
        """The driver ends: the file holds exactly ``queue``, or is gone if that is empty."""
        queue = list(queue)
        self._close_file()
        if not queue:
            if self.path is not None:
                with contextlib.suppress(OSError):
                    self.path.unlink(missing_ok=True)
            return
        self._failed = False  # one more try: the disk may have room again
        self.rewrite(queue)
        self._close_file()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _write(self, writes: list[Write], mode: str) -> None:
        """Append ``writes``; ``mode="w"``: in place of what the file holds."""
        if self.path is None or self._failed:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("a", encoding="utf-8")
            if mode == "w":
                self._file.truncate(0)  # appends go on at the (new) end
                self._lines = 0
            self._file.write("".join(json.dumps(w.to_json(), default=str) + "\n" for w in writes))
            self._file.flush()  # in the kernel's hands: a killed process loses nothing
            self._lines += len(writes)
        except OSError as e:
            self._failed = True
            log.warning("MLflow's undelivered writes are no longer kept in %s (%s): a killed driver would lose "
                        "those MLflow has not taken", self.path, e)  # fmt: skip
