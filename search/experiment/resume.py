"""What a ``--resume`` after a killed driver reconciles, now that Tune snapshots the experiment by time.

Tune's experiment snapshot (every trial's state, the searcher's, the callbacks') costs O(trials) to write. Taken
after every event it made a search O(trials^2); the search phase now takes it by time (``SNAPSHOT_S``: Tune's
"auto", at most every 10 s and at most ~5% of the driver's time, plus the snapshot Tune forces when a trial has
made ``search.keep_checkpoints`` checkpoints since the last, so it never names a deleted one). A driver killed
between two snapshots leaves three kinds of trial, and a resume makes Tune, the study and MLflow agree on each:

- a trial that ran on after the snapshot: Tune restarts it from the last checkpoint the snapshot names, and the
  epochs it repeats are written nowhere twice (``search.plugins.history`` skips them in Tune's files,
  ``search.tracking.tracker`` in MLflow, ``search.study.searcher`` in the study);
- a trial whose end the study recorded after the snapshot: it runs again from that checkpoint too, and
  ``search.plugins.scheduler`` ends it as the study recorded (pruned at the same epoch, or never stopped early);
- a trial started after the snapshot (an orphan: the study and MLflow have it, Tune does not): Tune creates it
  again under its own id (``search.patches.orphan_ids`` adopts it before asking for a new configuration), with the
  same values, so it continues its MLflow run and its Optuna trial. It starts from its first epoch.

What a killed driver repeats is therefore at most the epochs run since the last snapshot (about 10 s of trials),
and the whole of the trials started after it. MLflow's writes trail Tune's by the time the tracker takes to
deliver them (a fraction of a second; an outage's length while MLflow is away): those a killed driver had queued,
such as the end of a trial the snapshot holds as ended, are in its ``search.tracking.pending`` file, and the resume
queues them ahead of its own writes.
"""

from __future__ import annotations

import importlib
import logging
import sys

SNAPSHOT_S = "auto"  # the search phase's TUNE_GLOBAL_CHECKPOINT_S
FINAL_SNAPSHOT_S = "0"  # the final phase's: a few trials, a snapshot after every event costs nothing


# Where search/'s modules were before it was grouped by concern (up to febcc13): the tuner.pkl and the searcher's
# state of a search started then name its classes there, so its --resume finds them under those names too.
MOVED_MODULES = {
    "search.callback": "search.tracking.mlflow_callback",
    "search.tracker": "search.tracking.tracker",
    "search.writes": "search.tracking.writes",
    "search.registry": "search.tracking.model_registry",
    "search.searcher": "search.study.searcher",
    "search.space": "search.study.space",
    "search.study_storage": "search.study.storage",
    "search.progress": "search.plugins.progress",
    "search.history": "search.plugins.history",
    "search.disk_guard": "search.plugins.disk_guard",
    "search.scheduler": "search.plugins.scheduler",
    "search.resources": "search.plugins.resources",
    "search.config": "search.experiment.search_config",
    "search.final": "search.experiment.final_phase",
}


def find_moved_modules() -> None:
    """Make the modules of ``MOVED_MODULES`` importable under their old names too (before ``Tuner.restore``)."""
    for old, new in MOVED_MODULES.items():
        sys.modules.setdefault(old, importlib.import_module(new))


def prepare(study_name: str, storage: str, experiment_path: str) -> None:
    """Before ``Tuner.restore``: the endings the study recorded, for the scheduler to follow; where the study is now
    and which trials Tune's snapshot holds, for the searcher (the study's others with a Ray id are the orphans)."""
    from search.plugins.scheduler import settle
    from search.study.searcher import StudySearcher, study_endings

    settle(study_endings(study_name, storage))
    StudySearcher.restored_storage = storage
    StudySearcher.restored_known = snapshot_trial_ids(experiment_path)


def snapshot_trial_ids(experiment_path: str) -> set[str]:
    """The ids of the trials in the experiment's newest snapshot: those ``Tuner.restore`` restores."""
    from ray.tune import ExperimentAnalysis

    quiet = logging.getLogger("ray.tune.analysis.experiment_analysis")  # "Failed to fetch metrics" of a trial
    level = quiet.level  # that had not reported when the driver was killed: expected, and not what is read here
    quiet.setLevel(logging.ERROR)
    try:
        return {trial.trial_id for trial in ExperimentAnalysis(experiment_path).trials}
    finally:
        quiet.setLevel(level)


def forget() -> None:
    """A new search in this process: nothing to reconcile."""
    from search.plugins.scheduler import settle
    from search.study.searcher import StudySearcher

    StudySearcher.restored_storage = StudySearcher.restored_known = None
    settle({})
