"""Tune's experiment state written atomically, so a full disk or a kill mid-write never leaves a search that cannot
be resumed.

Ray 2.60's ``TuneController.save_to_dir`` opens ``experiment_state-*.json`` for writing in place: when the disk
fills up during the write the file is left empty and ``Tuner.restore`` fails on it. ``install`` wraps that method
in this process so the state goes to a temporary file first and replaces the file only once it is complete. The
temporary file sits beside the staging folder, not in it: Tune uploads that folder to the storage in the background.

Tune's own atomic writes of the searcher's and the callbacks' state (``_atomic_save``) put their temporary file
inside that folder, so an upload running while one is renamed fails ("Failed to open local file ...-tmp-...",
logged with a traceback; the next upload succeeds). ``install`` moves those beside the folder too, and
``search.searcher`` saves the study's searcher with ``write_beside``.

On a resume, ``install`` also tells the study's searcher which trials Tune restored, and lets it have Tune
re-create an orphan (a trial started after the last snapshot, see ``search.resume``) under its own id before Tune
asks it for a new configuration.

Tune moves the trials it restores to the folder the experiment is restored from (a moved results folder), but not
the trials it creates after that: their specs come back from the search algorithm's own pickle (a SearchGenerator's
experiment spec, a BasicVariantGenerator's trial specs), naming the folder they were saved in. ``install`` gives
each trial Tune adds the controller's folder, so a trial created after a move writes its checkpoints there (in the
old folder, or where it is gone, it would fail).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

_TMP_TEMPLATE = "../.writing-experiment_state-{}.json"


def install() -> None:
    import ray.tune.callback
    import ray.tune.search.basic_variant
    import ray.tune.search.search_generator
    from ray.tune.execution.tune_controller import TuneController

    if getattr(TuneController.save_to_dir, "_atomic", False):
        return
    for module in (ray.tune.callback, ray.tune.search.basic_variant, ray.tune.search.search_generator):  # by name
        module._atomic_save = _atomic_save
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
    _tell_restored_trials()
    _adopt_orphans()
    _add_trials_where_restored()


def _adopt_orphans() -> None:
    """``SearchGenerator.create_trial_if_possible`` creating the trial under the id of the searcher's next orphan
    (if it has one): Tune's own creation path, with ``Trial.generate_id`` giving that id for the one call."""
    from ray.tune.experiment import Trial
    from ray.tune.search.search_generator import SearchGenerator

    create = SearchGenerator.create_trial_if_possible

    def create_trial_if_possible(self: SearchGenerator, experiment_spec: dict):
        orphan = _next_orphan(self.searcher)
        if orphan is None:
            return create(self, experiment_spec)
        generate = Trial.__dict__["generate_id"]  # the classmethod itself, put back as it was
        Trial.generate_id = staticmethod(lambda: orphan)
        try:
            return create(self, experiment_spec)
        finally:
            Trial.generate_id = generate

    SearchGenerator.create_trial_if_possible = create_trial_if_possible


def _tell_restored_trials() -> None:
    """``TuneController._restore_trials`` telling the study's searcher which trials the snapshot holds (Tune
    restores the searcher after its trials): the study's others with a Ray id are the orphans."""
    from ray.tune.execution.tune_controller import TuneController

    from search.searcher import StudySearcher

    restore_trials = TuneController._restore_trials

    def _restore_trials(self: TuneController, experiment_state: dict):
        trials = restore_trials(self, experiment_state)
        StudySearcher.restored_known = {trial.trial_id for trial in trials}
        return trials

    TuneController._restore_trials = _restore_trials


def _add_trials_where_restored() -> None:
    """``TuneController.add_trial`` moving a trial to the controller's folder when its storage names another (one
    created from a search algorithm's restored spec after a move), as Tune's ``_restore_trials`` moves the trials
    it restores. A new trial has no checkpoint to move, and its storage is its own copy."""
    from ray.tune.execution.tune_controller import TuneController

    add_trial = TuneController.add_trial

    def add_trial_here(self: TuneController, trial) -> None:
        here, theirs = self._storage, trial.storage
        if theirs is not None and theirs.experiment_fs_path != here.experiment_fs_path:
            theirs.storage_filesystem = here.storage_filesystem
            theirs.storage_fs_path = here.storage_fs_path
            theirs.experiment_dir_name = here.experiment_dir_name
        add_trial(self, trial)

    TuneController.add_trial = add_trial_here


def _next_orphan(searcher) -> str | None:
    """The next orphan of the study's searcher, found under Tune's wrappers (``ConcurrencyLimiter``)."""
    for _ in range(8):  # wrappers nest a few deep at most
        if hasattr(searcher, "next_orphan"):
            return searcher.next_orphan()
        searcher = getattr(searcher, "searcher", None)
    return None


def _atomic_save(state: dict, checkpoint_dir: str, file_name: str, tmp_file_name: str) -> None:
    """Tune's ``_atomic_save``, its temporary file outside the uploaded folder."""
    import ray.cloudpickle as cloudpickle

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            cloudpickle.dump(state, f)

    write_beside(Path(checkpoint_dir) / file_name, write)


def write_beside(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then ``tmp`` replaces ``path``: the temporary file in the folder above ``path``'s (the same
    file system, and not in a folder Tune uploads)."""
    import uuid

    tmp = path.parent.resolve().parent / f".{uuid.uuid4()}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
