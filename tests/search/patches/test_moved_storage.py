"""search.patches.moved_storage: a trial created from a spec that names the results folder the experiment was moved
from writes to the folder it was restored in."""

from __future__ import annotations

import pytest
from ray.tune.experiment import Trial

from search.patches.moved_storage import PATCH
from tests.search.patches.conftest import TRAINABLE, storage


def _add_trial_from_the_old_folder(controller, tmp_path) -> Trial:
    trial = Trial(TRAINABLE, config={}, storage=storage(tmp_path / "old"))  # as a restored search algorithm makes it
    controller.add_trial(trial)
    return trial


@pytest.mark.xfail(
    strict=True, raises=AssertionError, reason="Ray moves only the trials it restores: passes once upstream fixes it"
)
def test_stock_tune_puts_a_new_trial_in_the_experiments_folder(controller, tmp_path):
    with PATCH.applied(installed=False):
        trial = _add_trial_from_the_old_folder(controller, tmp_path)
    assert trial.storage.experiment_fs_path == controller._storage.experiment_fs_path


def test_patched_tune_puts_a_new_trial_in_the_experiments_folder(controller, tmp_path):
    with PATCH.applied():
        trial = _add_trial_from_the_old_folder(controller, tmp_path)
        here = Trial(TRAINABLE, config={}, storage=storage(tmp_path / "new"))  # already in the experiment's folder
        own = here.storage
        controller.add_trial(here)
    assert trial.storage.experiment_fs_path == controller._storage.experiment_fs_path == str(tmp_path / "new" / "exp")
    assert trial.storage is not controller._storage  # its own copy, as Tune gives each trial
    assert here.storage is own and own.experiment_fs_path == str(tmp_path / "new" / "exp")  # left as it was
    assert controller.get_trials() == [trial, here]
