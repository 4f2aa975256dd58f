"""Tune's experiment state written atomically, so a full disk or a kill mid-write never leaves a search that cannot
be resumed.

Ray 2.60's ``TuneController.save_to_dir`` opens ``experiment_state-*.json`` for writing in place: when the disk
fills up during the write the file is left empty and ``Tuner.restore`` fails on it. ``install`` wraps that method
in this process so the state goes to a temporary file first and replaces the file only once it is complete. The
temporary file sits beside the staging folder, not in it: Tune uploads that folder to the storage in the background.
"""

from __future__ import annotations

import os
from pathlib import Path

_TMP_TEMPLATE = "../.writing-experiment_state-{}.json"


def install() -> None:
    from ray.tune.execution.tune_controller import TuneController

    if getattr(TuneController.save_to_dir, "_atomic", False):
        return
    original = TuneController.save_to_dir

    def save_to_dir(self: TuneController) -> None:
        folder = Path(self._storage.experiment_driver_staging_path)
        final = folder / self.experiment_state_file_name
        self.CKPT_FILE_TMPL = _TMP_TEMPLATE  # an instance attribute: the class's template stays Tune's own
        tmp = (folder / self.experiment_state_file_name).resolve()
        try:
            original(self)
            os.replace(tmp, final)
        finally:
            del self.CKPT_FILE_TMPL
            tmp.unlink(missing_ok=True)

    save_to_dir._atomic = True
    TuneController.save_to_dir = save_to_dir
