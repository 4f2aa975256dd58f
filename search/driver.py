"""The search driver: start or join Ray, open the search's parent run, build the Tuner, run it, end it."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from contract import metrics as M
from contract.files import PENDING_WRITES, SEARCH_CONFIG, STUDY_DB
from contract.flat import flatten
from contract.status import COMPLETED, INTERRUPTED
from contract.tracking import CONFIG_ARTIFACT, OPTUNA_STORAGE_TAG, ROLE_PARENT, ROLE_TAG, SPACE_ARTIFACT
from search.config import SearchConfig
from search.tracker import MlflowTracker
from search.writes import PARENT

log = logging.getLogger(__name__)

INTERRUPTED_EXIT = 130  # the shell's code for a process ended by Ctrl-C


def configure_environment() -> None:
    """Library settings of the driver process (and the Ray workers it starts, which inherit them)."""
    # MLflow's HTTP client otherwise retries a dead server for minutes inside Tune's event loop.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a URL per run; the summary has one
    # Tune saves the experiment state after every event, so a killed driver loses little...
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "0")
    # ...and forces a snapshot whenever a trial has made num_to_keep checkpoints: wanted here, so no warning.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own result files come from search.history (each epoch once); no TensorBoard files: MLflow is the UI.
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"


def local_ray(**kwargs: Any) -> None:
    """Start a local Ray whose every socket listens on 127.0.0.1 only.

    Ray binds its gRPC servers to all interfaces unless clustering is off; this variable (named for macOS and
    Windows, where it is the default) turns it off, and the worker processes inherit it.
    """
    import ray

    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False, **kwargs)


def start_ray(address: str | None) -> None:
    """Join the cluster at ``address``, or start a local Ray."""
    import ray

    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    else:
        local_ray()


def study_storage(cfg: SearchConfig) -> str:
    """The Optuna study: an sqlite file in the experiment folder (local storage) or the working directory."""
    folder = cfg.local_experiment_dir
    if folder is None:
        return f"sqlite:///{Path(f'{cfg.name}.{STUDY_DB}').resolve()}"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / STUDY_DB}"


def open_tracker(cfg: SearchConfig) -> MlflowTracker:
    folder = cfg.local_experiment_dir
    pending = str(folder / PENDING_WRITES) if folder else None
    return MlflowTracker(cfg.resolved_tracking_uri, cfg.name, cfg.experiment_path, pending)


def open_parent(cfg: SearchConfig, tracker: MlflowTracker, storage: str) -> str:
    """The search's parent run (found again on a resume), and its config beside the results."""
    from search.provenance import versions

    config = cfg.to_dict()
    parent_id = tracker.start_parent(
        run_name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        params={k: v for k, v in flatten(config).items() if not k.startswith("space.")},
        tags={**versions(), OPTUNA_STORAGE_TAG: storage, ROLE_TAG: ROLE_PARENT},
        artifacts={CONFIG_ARTIFACT: config, SPACE_ARTIFACT: config["space"]},
    )
    if cfg.local_experiment_dir:  # lets `python -m analysis.report FOLDER` work without MLflow
        (cfg.local_experiment_dir / SEARCH_CONFIG).write_text(json.dumps(config, indent=1))
    return parent_id


def build_tuner(cfg: SearchConfig, resume: bool, tracker: MlflowTracker, storage: str):
    """A new Tuner for the search, or the one restored from its experiment folder (``resume``)."""
    from ray import tune

    from search.callback import MlflowCallback
    from search.history import CsvHistory, JsonHistory
    from search.progress import Progress
    from search.searcher import StudySearcher
    from trainables.tune import train_t2t

    s = cfg.search
    trainable = tune.with_resources(train_t2t, {"cpu": s.cpus_per_trial, "gpu": s.gpus_per_trial})
    if resume:
        return tune.Tuner.restore(cfg.experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=M.OBJECTIVE,
            mode=M.OBJECTIVE_MODE,
            search_alg=StudySearcher.from_config(cfg, storage),
            scheduler=build_scheduler(cfg),
            num_samples=s.num_trials,
            max_concurrent_trials=s.max_concurrent,
            time_budget_s=s.time_budget_s,
            reuse_actors=True,  # a new trial skips a worker start (~3 s of torch imports on a laptop)
            trial_name_creator=lambda trial: f"trial_{trial.trial_id}",
            trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}",
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=cfg.resolved_storage_path,
            callbacks=[MlflowCallback(tracker), Progress(), JsonHistory(), CsvHistory()],
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=s.keep_checkpoints, checkpoint_score_attribute=M.VAL_ACC, checkpoint_score_order="max"
            ),
            verbose=0,  # progress comes from search.progress.Progress, one line per event
        ),
    )


def build_scheduler(cfg: SearchConfig):
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    s = cfg.search
    if s.scheduler == "none":
        return FIFOScheduler()
    return ASHAScheduler(
        time_attr=M.EPOCH, max_t=cfg.base.train.epochs, grace_period=s.grace_period, reduction_factor=s.reduction_factor
    )


def end_interrupted(cfg: SearchConfig, tracker: MlflowTracker) -> int:
    """Trials that Tune stopped without ending them (Ctrl-C): their runs and the parent end as interrupted."""
    for trial_id in tracker.open_trials():
        tracker.trial_ended(trial_id, INTERRUPTED)
    tracker.trial_ended(PARENT, INTERRUPTED)
    tracker.close(timeout_s=10)
    resume = f"python -m search.run --name {cfg.name} --resume"
    if cfg.storage_path or os.environ.get("T2T_STORAGE_PATH"):
        resume += f" --storage-path {cfg.resolved_storage_path}"
    print(f"interrupted with trials unfinished; continue with: {resume}", file=sys.stderr)
    return INTERRUPTED_EXIT


def run_search(cfg: SearchConfig, resume: bool, address: str | None) -> int:
    """The search, from Ray's start to its summary; the exit code (0 done, 1 no trial finished, 2, 130)."""
    import ray

    from search import results

    configure_environment()
    started = time.monotonic()
    start_ray(address)
    try:
        from search.resources import ResourceError, check_cluster

        try:
            check_cluster(cfg.search.cpus_per_trial, cfg.search.gpus_per_trial, joined=bool(address))
        except ResourceError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if address:  # a node that cannot see the storage would fail every trial it gets: stop before any
            from search.cluster.storage import StorageError, check_storage

            try:
                check_storage(cfg.resolved_storage_path)
            except StorageError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
        storage = study_storage(cfg)
        tracker = open_tracker(cfg)
        parent_id = open_parent(cfg, tracker, storage)
        log.info(
            "search %r: %d trials, results in %s, MLflow parent run %s",
            cfg.name, cfg.search.num_trials, cfg.experiment_path, parent_id,
        )  # fmt: skip
        grid = build_tuner(cfg, resume, tracker, storage).fit()  # Ctrl-C: Tune stops gracefully, saves, returns
        if tracker.open_trials():
            return end_interrupted(cfg, tracker)
        summary = results.summarize(grid, tracker, cfg, storage, started)
        return results.finish(summary, tracker, cfg, parent_id, COMPLETED)
    finally:
        ray.shutdown()
