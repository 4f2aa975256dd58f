"""Stop a search before its storage fills up, while Tune can still save its state.

A full disk mid-write leaves files cut short that Tune writes in place: its experiment state in the storage folder
(the upload from its staging folder is a plain copy) and the trials' checkpoints. So the search is stopped
gracefully when the storage's free space drops below what the next checkpoints and snapshot may need: a few times
the largest checkpoint seen plus the state, at least ``FLOOR_BYTES``. Its trials stay resumable; the driver ends
it as an error (exit 3) naming the free space. Local (and mounted) storage only: an object store does not fill up.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Any, ClassVar

from ray.tune import Callback

FLOOR_BYTES = 1 << 20
CHECKPOINTS_AHEAD = 4  # checkpoints that may be written before the next check (concurrent trials, retries)
EVERY_S = 1.0


def _folder_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


class StorageFullError(OSError):
    """The guard stopped the search: the message says how much is free and how much may be needed."""


class DiskGuard(Callback):
    """A Tune callback that asks Tune to stop while the storage still has room for a save."""

    tripped: ClassVar[str | None] = None  # why this process asked Tune to stop (read by the driver after fit)

    def __init__(self, storage: str) -> None:
        self.storage = storage
        self._largest = 0  # bytes of the largest trial checkpoint seen
        self._last = 0.0

    def __getstate__(self) -> dict[str, Any]:
        return {"storage": self.storage}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["storage"])

    def needed(self) -> int:
        """Bytes the next saves may need: a few of the largest checkpoint seen plus the state, at least
        ``FLOOR_BYTES``."""
        state = max((p.stat().st_size for p in Path(self.storage).glob("experiment_state-*.json")), default=0)
        return max(FLOOR_BYTES, CHECKPOINTS_AHEAD * self._largest + 2 * state)

    def on_checkpoint(self, iteration, trials, trial, checkpoint, **info) -> None:
        if os.path.isdir(checkpoint.path):
            self._largest = max(self._largest, _folder_bytes(checkpoint.path))
        self._check()

    def on_step_end(self, iteration, trials, **info) -> None:
        if trials:  # where the experiment is now: a resumed folder may have moved since this guard was pickled
            self.storage = trials[0].storage.experiment_fs_path
        if time.monotonic() - self._last >= EVERY_S:
            self._check()

    def _check(self) -> None:
        self._last = time.monotonic()
        if DiskGuard.tripped is not None or not os.path.isdir(self.storage):
            return
        free, needed = shutil.disk_usage(self.storage).free, self.needed()
        if free < needed:
            DiskGuard.tripped = (
                f"the storage at {self.storage} has {free / 2**20:.2f} MB free, less than the {needed / 2**20:.2f} MB "
                "the next checkpoints and Tune's state may need: free some space or move the results folder"
            )
            os.kill(os.getpid(), signal.SIGUSR1)  # Tune's handler: stop the trials, save the state, return
