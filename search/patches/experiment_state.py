"""Tune's experiment state written whole or not at all.

Ray 2.60's ``TuneController.save_to_dir`` writes ``experiment_state-*.json`` in place: a full disk (or a kill)
during the write leaves it cut short, and ``Tuner.restore`` then fails on it, so the search cannot be resumed.
Patched: the state goes to a temporary file beside the staging folder (not in it: Tune uploads that folder in the
background), which replaces the state file once complete.
"""

from __future__ import annotations

import os
from pathlib import Path

from search.patches._patch import ray_patch

_TMP_TEMPLATE = "../.writing-experiment_state-{}.json"  # relative to the staging folder


def _make(original):
    def save_to_dir(self) -> None:
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

    return save_to_dir


PATCH = ray_patch(
    name="experiment_state",
    target="ray.tune.execution.tune_controller:TuneController.save_to_dir",
    make=_make,
    fingerprints={
        "ray.tune.execution.tune_controller:TuneController.save_to_dir": "12db40e542d7e1d9",
        "ray.tune.execution.tune_controller:TuneController.experiment_state_file_name": "9c370f20ff832737",
    },
    upstream="no upstream report found (searched 2026-12): Ray's own _atomic_save is not used for this file",
)
