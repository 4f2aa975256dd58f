"""The search driver: start or join Ray, open the search's parent run, build the Tuner, run it, run the final phase
(``search.experiment.final_phase``: a second Tuner), and end it the way it ended (docs/endings.md).
Either phase ends the same way on a signal, an error or a full disk, and ``--resume`` continues whichever was
unfinished.

Exit codes: 0 the search finished (also when its time budget ran out), 1 no trial finished without diverging or
failing, 2 bad input, 3 an error stopped the search (resumable), 130 Ctrl-C, 143 SIGTERM.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import time
from typing import Any, NoReturn

import search.experiment.resume
from contract import metrics as M
from contract.files import PENDING_WRITES
from contract.flat import flatten
from contract.redact import redact
from contract.status import COMPLETED, FAILED, INTERRUPTED, NOT_STARTED, PRUNED
from contract.tracking import (
    CONFIG_ARTIFACT,
    EXPERIMENT_PATH_TAG,
    OPTUNA_STORAGE_TAG,
    ROLE_PARENT,
    ROLE_TAG,
    SPACE_ARTIFACT,
    no_telemetry,
)
from search.experiment.identity import SearchIdentity
from search.experiment.search_config import SearchConfig
from search.experiment.signals import GracefulStop
from search.study.storage import study_location
from search.tracking.store_process import StoreProcess
from search.tracking.tracker import PARENT, MlflowTracker

log = logging.getLogger(__name__)

ERROR_EXIT = 3
# How often Tune snapshots the search phase (search.experiment.resume); a TUNE_GLOBAL_CHECKPOINT_S the user set wins.
SEARCH_SNAPSHOT_S = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S", search.experiment.resume.SNAPSHOT_S)
FINAL_SNAPSHOT_S = search.experiment.resume.FINAL_SNAPSHOT_S
SECRET_KEYS = ("tracking_uri", "storage_path", "search.warm_start")  # config values that may hold a credential


class SearchEnded(Exception):
    """The search ended before its summary (a signal, an error, a full disk, a problem found once Ray was up).
    Raised once what that ending closes, prints and writes is done; ``run_search`` returns its exit ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def configure_environment() -> None:
    """Library settings of the driver process (and the Ray workers it starts, which inherit them)."""
    # MLflow's HTTP client otherwise retries a dead server for minutes; the tracker retries in the background.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # a URL per run; the summary has one
    no_telemetry()
    # Tune forces a snapshot whenever a trial has made num_to_keep checkpoints (search.experiment.resume): wanted.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    # Tune's own result files come from search.plugins.history (each epoch once); no TensorBoard files: MLflow is the UI
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"
    # A diverged trial's last result has no val_acc (nothing was measured): Tune must not call that an error.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"


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


def open_tracker(cfg: SearchConfig, identity: SearchIdentity, store: StoreProcess) -> MlflowTracker:
    """The search's MLflow tracker on ``store`` (started before Ray), its pending writes in the local folder."""
    pending = str(identity.local_dir / PENDING_WRITES)
    return MlflowTracker(cfg.resolved_tracking_uri, cfg.name, identity.search_id, pending).open(store)


def open_parent(cfg: SearchConfig, tracker: MlflowTracker, storage: str) -> str:
    """The search's parent run (found again on a resume); no credential in its params or tags."""
    from search.experiment.provenance import versions

    config = cfg.to_dict()
    params = {k: v for k, v in flatten(config).items() if not k.startswith("space.")}
    params.update({k: redact(str(params[k])) for k in SECRET_KEYS if params.get(k) is not None})
    tags = {**versions(), ROLE_TAG: ROLE_PARENT, EXPERIMENT_PATH_TAG: redact(cfg.experiment_path)}
    if cfg.search.mode == "study":  # a population keeps no study
        tags[OPTUNA_STORAGE_TAG] = redact(storage)
    return tracker.start_parent(
        run_name=f"{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}",
        params=params,
        tags=tags,
        artifacts={CONFIG_ARTIFACT: config, SPACE_ARTIFACT: config["space"]},
    )


def build_tuner(cfg: SearchConfig, resume: bool, tracker: MlflowTracker, storage: str, at_once: int | None):
    """A new Tuner for the search, or the one restored from its experiment folder (``resume``); ``at_once``:
    ``search.plugins.resources.trials_at_once``."""
    from ray import tune

    from search.plugins.disk_guard import DiskGuard
    from search.plugins.history import CsvHistory, JsonHistory
    from search.plugins.progress import Progress
    from search.plugins.resources import reuse_actors, trial_resources

    s = cfg.search
    resources = trial_resources(s.cpus_per_trial, s.gpus_per_trial, s.workers_per_trial)
    trainable = tune.with_resources(trial_function(), resources)
    callbacks = [tracking_callback(cfg, tracker), Progress(), JsonHistory(), CsvHistory()]
    if cfg.local_experiment_dir:
        callbacks.append(DiskGuard(cfg.experiment_path))
    if resume:  # the callbacks come back from tuner.pkl; their tracker is this driver's (search.tracking.tracker)
        if s.mode == "study":  # a population has no study to reconcile with
            search.experiment.resume.prepare(cfg.name, storage, cfg.experiment_path)
        return tune.Tuner.restore(cfg.experiment_path, trainable, resume_unfinished=True, resume_errored=True)
    search.experiment.resume.forget()
    proposed = proposals(cfg, storage)
    return tune.Tuner(
        trainable,
        param_space=proposed.pop("param_space", None),
        tune_config=tune.TuneConfig(
            metric=M.OBJECTIVE,
            mode=M.OBJECTIVE_MODE,
            **proposed,
            # every member must exist for PBT to pause and resume them in turn: the resources alone decide
            max_concurrent_trials=at_once if s.mode == "study" else None,
            time_budget_s=s.time_budget_s,
            reuse_actors=reuse_actors(s.workers_per_trial),
            trial_name_creator=trial_name,  # a function, not a lambda: Tune's snapshot pickles it once per trial
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=cfg.name,
            storage_path=cfg.resolved_storage_path,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(
                num_to_keep=kept_checkpoints(cfg), checkpoint_score_attribute=M.VAL_ACC, checkpoint_score_order="max"
            ),
            verbose=0,  # progress comes from search.plugins.progress.Progress, one line per event
        ),
    )


def proposals(cfg: SearchConfig, storage: str) -> dict[str, Any]:
    """Who proposes the trials and who stops them (and a population's ``param_space``): the study and ASHA
    (``search.mode=study``), else the population and its PBT or PB2 (search/population/)."""
    if cfg.search.mode != "study":
        from search.population.tuning import population_tuning

        return population_tuning(cfg)
    from search.plugins.scheduler import build_scheduler
    from search.study.searcher import StudySearcher

    s = cfg.search
    return {
        "search_alg": StudySearcher.from_config(cfg, storage),
        "scheduler": build_scheduler(s.scheduler, cfg.max_epochs, s.grace_period, s.reduction_factor),
        "num_samples": s.num_trials,
    }


def tracking_callback(cfg: SearchConfig, tracker: MlflowTracker):
    """The Tune callback that mirrors trials into MLflow (a population member's with its schedule)."""
    from search.tracking.mlflow_callback import MlflowCallback

    if cfg.search.mode != "study":
        from search.population.tuning import population_callback

        return population_callback(cfg, tracker)
    return MlflowCallback(tracker)


def kept_checkpoints(cfg: SearchConfig) -> int | None:
    """Checkpoints kept per trial: ``search.keep_checkpoints``, or all of a population member's. A member is
    copied from the checkpoint of its last perturbation, which a smaller number can delete first (Ray warns at 2
    and below, but any number can lose it)."""
    return cfg.search.keep_checkpoints if cfg.search.mode == "study" else None


def trial_function():
    """The trainable's function: its results carry the trial's telemetry and data sets, which the MLflow callback
    logs to the trial's run."""
    from trainables.tune import train_t2t_tracked

    return train_t2t_tracked


def trial_name(trial) -> str:
    """A trial's name and folder in Tune's experiment: ``trial_<id>``."""
    return f"trial_{trial.trial_id}"


def resume_command(cfg: SearchConfig) -> str:
    """What continues this search: its config is saved beside Tune's state, so the name and the storage do."""
    command = f"python -m search.run --name {cfg.name} --resume"
    if cfg.storage_path or os.environ.get("T2T_STORAGE_PATH"):
        command += f" --storage-path {redact(cfg.resolved_storage_path)}"
    return command


def end_stopped(tracker: MlflowTracker, reason: str, parent_status: str) -> None:
    """The trials Tune stopped without ending them stay resumable: their runs end KILLED as interrupted."""
    for trial_id in tracker.open_trials():
        tracker.trial_ended(trial_id, INTERRUPTED, reason)
    tracker.trial_ended(PARENT, parent_status, reason)
    tracker.close(timeout_s=10)


def end_interrupted(cfg: SearchConfig, tracker: MlflowTracker, stop: GracefulStop) -> NoReturn:
    """Ctrl-C or SIGTERM: unfinished trials stay resumable, one line says how to continue."""
    end_stopped(tracker, f"stopped by {stop.received}", INTERRUPTED)
    print(
        f"interrupted ({stop.received}) with trials unfinished; continue with: {resume_command(cfg)}", file=sys.stderr
    )
    raise SearchEnded(stop.exit_code)


def end_failed(cfg: SearchConfig, tracker: MlflowTracker, error: BaseException) -> NoReturn:
    """An error inside Tune (a full disk, a store that broke): one line; the search can be resumed once fixed."""
    line = redact(describe_error(error))
    log.debug("the search stopped with an error", exc_info=error)
    end_stopped(tracker, f"the search stopped: {line}", FAILED)
    print(f"error: the search stopped: {line}; once fixed, continue with: {resume_command(cfg)}", file=sys.stderr)
    raise SearchEnded(ERROR_EXIT)


def describe_error(error: BaseException) -> str:
    """One line for what stopped the search: its root cause, unwrapped from Tune's and Ray's wrappers."""
    import errno

    cause, seen = error, set()
    while id(cause) not in seen:  # RayTaskError keeps the worker's exception as .cause; Tune chains its own
        seen.add(id(cause))
        cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__ or cause
    if getattr(cause, "errno", None) == errno.ENOSPC or "[Errno 28]" in str(cause):
        return "no space left on the device: free some space, or move the results folder to a larger disk"
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[0] if text else ''}"[:500]


def end_time_budget(cfg: SearchConfig, tracker: MlflowTracker, storage: str) -> str:
    """Tune ended the trials still running at the deadline without telling anyone: those that finished an epoch
    are pruned there, those that had not are not_started (they measured nothing)."""
    from search.study.searcher import end_unfinished

    reason = f"the search's time budget ({cfg.search.time_budget_s:g} s) ran out"
    measured = {trial_id for trial_id in tracker.open_trials() if tracker.reported(trial_id)}
    for trial_id in tracker.open_trials():
        tracker.trial_ended(trial_id, PRUNED if trial_id in measured else NOT_STARTED, reason)
    if cfg.search.mode == "study":  # a population keeps no study
        end_unfinished(cfg.name, storage, measured, reason)
    return reason


def run_search(cfg: SearchConfig, resume: bool, address: str | None, verbose: bool = False) -> int:
    """The search, from Ray's start to its summary; the exit code (see the module's docstring). ``verbose``: the
    libraries' notices too (``search.experiment.console``)."""
    import ray

    from search.experiment import console

    console.filter_ray(verbose)
    configure_environment()
    started = time.monotonic()
    store = StoreProcess(cfg.resolved_tracking_uri)  # the tracker's, started now: its imports overlap Ray's start
    with GracefulStop() as stop:
        try:
            store.start()
            start_ray(address)
            stop.reinstall()
            return _search(cfg, resume, address, stop, started, store)
        except SearchEnded as ended:
            return ended.code
        except KeyboardInterrupt:  # a signal before Tune ran, or a second one while it saved
            print(f"interrupted ({stop.received}); continue with: {resume_command(cfg)}", file=sys.stderr)
            return stop.exit_code
        finally:
            store.close()
            ray.shutdown()


def cluster_problem(cfg: SearchConfig, address: str | None) -> str | None:
    """What the Ray just started or joined cannot do for this search, before any study or run exists: a trial no
    node can place, a node that cannot see the storage (it would fail every trial it gets)."""
    from search.plugins.resources import ResourceError, check_cluster

    try:
        s = cfg.search
        check_cluster(s.cpus_per_trial, s.gpus_per_trial, joined=bool(address), workers=s.workers_per_trial)
    except ResourceError as e:
        return str(e)
    if address:
        from search.cluster.storage import StorageError, check_storage

        try:
            check_storage(cfg.resolved_storage_path)
        except StorageError as e:
            return str(e)
    return None


def pending_trials(cfg: SearchConfig, at_once: int | None) -> None:
    """Tune keeps one trial pending at a time for an uncapped searcher, so trials start one after another however
    many the cluster fits, and short trials run one at a time: as many pending as fit. A capped one (``at_once``)
    already gets as many pending as its cap from Tune."""
    from search.plugins.resources import trial_slots

    if at_once is None:
        slots = trial_slots(cfg.search.cpus_per_trial, cfg.search.gpus_per_trial)
        os.environ.setdefault("TUNE_MAX_PENDING_TRIALS_PG", str(slots))


def _search(
    cfg: SearchConfig, resume: bool, address: str | None, stop: GracefulStop, started: float, store: StoreProcess
) -> int:
    from search.experiment import final_phase as final
    from search.experiment import results
    from search.plugins.resources import trials_at_once

    problem = cluster_problem(cfg, address)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        raise SearchEnded(2)
    s = cfg.search
    at_once = trials_at_once(s.max_concurrent, s.cpus_per_trial, s.gpus_per_trial, joined=address is not None)
    pending_trials(cfg, at_once)
    identity = identify(cfg, resume)
    storage = study_location(identity.local_dir)
    tracker = open_tracker(cfg, identity, store)
    parent_id = open_parent(cfg, tracker, storage)
    log.info("search %r (id %s): %s, results in %s, MLflow parent run %s", cfg.name, identity.search_id,
             cfg.describe_trials(), redact(cfg.experiment_path), parent_id)  # fmt: skip
    if resume:
        search.experiment.resume.find_moved_modules()  # a search started before search/ was regrouped
    if resume and final.started(cfg):  # the search phase had ended: its results as they were, not run again
        grid = build_tuner(cfg, resume, tracker, storage, at_once).get_results()
    else:
        grid = fit(cfg, tracker, stop, lambda: build_tuner(cfg, resume, tracker, storage, at_once), SEARCH_SNAPSHOT_S)
    reason = None
    if tracker.open_trials():  # Tune returned with trials it did not end: only its time budget does that
        if not cfg.search.time_budget_s:
            unfinished(cfg, tracker)
        reason = end_time_budget(cfg, tracker, storage)
    final_phase = run_final(cfg, grid, tracker, storage, stop, at_once) if cfg.search.final.enabled else None
    summary = results.summarize(grid, tracker, cfg, storage, started, final_phase)
    return results.finish(summary, tracker, cfg, parent_id, COMPLETED, reason)


def fit(cfg: SearchConfig, tracker: MlflowTracker, stop: GracefulStop, build, snapshot_s: str):
    """Run the Tuner ``build()`` makes, snapshotting its experiment every ``snapshot_s`` (``search.experiment.resume``):
    its ResultGrid. Ended early (a signal, an error, a full disk): ``SearchEnded``."""
    from search.plugins.disk_guard import DiskGuard, StorageFullError

    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = snapshot_s  # read when Tune's controller starts, in fit()
    try:
        grid = build().fit()
    except KeyboardInterrupt:
        end_interrupted(cfg, tracker, stop)
    except Exception as e:
        end_failed(cfg, tracker, e)
    if stop.received:
        end_interrupted(cfg, tracker, stop)
    if DiskGuard.tripped:
        end_failed(cfg, tracker, StorageFullError(DiskGuard.tripped))
    return grid


def unfinished(cfg: SearchConfig, tracker: MlflowTracker) -> NoReturn:
    """Tune returned with trials it did not end (outside a time budget): an error, resumable."""
    end_failed(cfg, tracker, RuntimeError(f"Tune ended with trials {tracker.open_trials()} unfinished"))


def run_final(cfg: SearchConfig, grid, tracker: MlflowTracker, storage: str, stop: GracefulStop, at_once: int | None):
    """The final phase (``search.final``): a ``final_phase.FinalPhase``, or None when no trial completed. Ended
    early: ``SearchEnded``."""
    from ray.tune.result import TRIAL_ID

    from contract.final import BASE_SOURCE, summarize
    from search.experiment import final_phase as final
    from search.experiment.results import outcomes
    from search.study.searcher import baseline_trial_id

    baseline = baseline_trial_id(cfg.name, storage) if cfg.search.mode == "study" else None  # a population: no study
    f, rows = cfg.search.final, outcomes(grid)
    retrains = final_candidates(cfg, rows, baseline)
    if not retrains:
        log.info("no trial completed: no final phase")
        return None
    runs = final.entries(retrains, f.seeds)
    log.info("final phase: %d configuration(s) x %d seeds retrained from scratch and measured on %s (%d runs)",
             len(retrains), f.seeds, final.split(cfg), len(runs))  # fmt: skip
    train = trial_function()
    build = functools.partial(final.build_final_tuner, cfg, tracker, train, runs, at_once)
    done = fit(cfg, tracker, stop, build, FINAL_SNAPSHOT_S)
    if tracker.open_trials():
        unfinished(cfg, tracker)
    baseline_status = next((r[M.STATUS] for r in rows if r[TRIAL_ID] == baseline), NOT_STARTED) if baseline else None
    if any(r.source == BASE_SOURCE for r in retrains):  # a population's: trained in the final phase only
        baseline_status = COMPLETED
    return final.FinalPhase(summarize(final.result_rows(done), final.split(cfg), baseline_status), done)


def final_candidates(cfg: SearchConfig, rows: list[dict[str, Any]], baseline: str | None) -> list:
    """What the final phase retrains (``final_phase.Retrain``s): the best trials' configs and the baseline, or a
    population's best schedules and the base config."""
    from search.experiment import final_phase as final

    if cfg.search.mode == "study":
        return final.candidates(rows, baseline, cfg.search.final.top_k)
    from search.population.draw import base_member
    from search.population.lineage import schedule_of

    return final.population_candidates(rows, cfg.search.final.top_k, schedule_of, base_member(cfg))


def identify(cfg: SearchConfig, resume: bool) -> SearchIdentity:
    """The search's id: the saved one on a resume (preflight checked it is there), else a new one."""
    if resume:
        return SearchIdentity.find(cfg.experiment_path, cfg.local_experiment_dir)
    return SearchIdentity.begin(cfg.experiment_path, cfg.local_experiment_dir, cfg.to_dict())
