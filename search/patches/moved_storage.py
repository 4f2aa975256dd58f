"""A trial Tune creates after a resume from a moved results folder writes to the new folder.

Ray 2.60's ``Tuner.restore`` moves the trials it restores to the folder the experiment is restored from, but not
the trials it creates afterwards: their specs come back from the search algorithm's own pickle (a SearchGenerator's
experiment spec, a BasicVariantGenerator's trial specs), naming the folder they were saved in, so every new trial
fails on the old path. Patched: ``TuneController.add_trial`` gives a trial whose storage names another folder the
controller's, as ``_restore_trials`` does for the restored ones (a new trial has no checkpoint to move).
"""

from __future__ import annotations

from search.patches._patch import ray_patch


def _make(add_trial):
    def add_trial_here(self, trial) -> None:
        here, theirs = self._storage, trial.storage
        if theirs is not None and theirs.experiment_fs_path != here.experiment_fs_path:
            theirs.storage_filesystem = here.storage_filesystem
            theirs.storage_fs_path = here.storage_fs_path
            theirs.experiment_dir_name = here.experiment_dir_name
        add_trial(self, trial)

    return add_trial_here


PATCH = ray_patch(
    name="moved_storage",
    target="ray.tune.execution.tune_controller:TuneController.add_trial",
    make=_make,
    fingerprints={"ray.tune.execution.tune_controller:TuneController.add_trial": "d6684d15af44c194"},
    upstream="no upstream report found (searched 2026-12)",
)
