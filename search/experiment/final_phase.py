"""The final phase: the search's best configurations and its baseline, retrained from scratch with several seeds
and measured once on the test split (val for an image folder without test/).

The search selects on val (its scheduler and searcher see nothing else), so its best val_acc is optimistic; these
runs are what the summary and the report lead with (``contract.final``). They are Ray Tune trials of their own
experiment, ``NAME/final`` in the results folder, so a cluster runs them in parallel with the same retries, and a
killed driver's ``--resume`` restores that experiment: no run twice, none left RUNNING. Their MLflow runs are
children of the search's parent run tagged ``search.role=final``; the Optuna study never sees them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ray import tune
from ray.tune.result import TRIAL_ID

from contract import final, ranking
from contract import metrics as M
from contract.files import FINAL_EXPERIMENT
from contract.schedule import with_values
from contract.status import COMPLETED, PRUNED, trial_status
from contract.tracking import (
    BASELINE_TAG,
    FINAL_SEED_TAG,
    FINAL_SOURCE_TAG,
    FINAL_SPLIT_TAG,
    ROLE_FINAL,
    ROLE_TAG,
    TEST_SPLIT,
    VAL_SPLIT,
)
from search.experiment.search_config import SearchConfig
from search.plugins.progress import Progress
from search.tracking.mlflow_callback import MlflowCallback
from search.tracking.tracker import MlflowTracker

ENTRY = "final_run"  # the one key of a final trial's config: {train config, its candidate's source, seed, baseline}
TRAIN = "train"
FOLLOW = "follow"  # an entry's schedule to follow (a population member's, contract.schedule), if any


@dataclass(frozen=True)
class Retrain:
    """A configuration the final phase retrains: the search trial it comes from and its training config, or the
    schedule of configurations it trains (a population member's: ``config`` is its first)."""

    source: str
    config: dict[str, Any]
    baseline: bool
    schedule: list[dict[str, Any]] | None = None


def candidates(rows: list[dict[str, Any]], baseline_id: str | None, top_k: int) -> list[Retrain]:
    """The ``top_k`` best completed trials (``contract.ranking``) and the baseline, each once; none when no trial
    completed (nothing is recommended). A pruned baseline is retrained too (full length here): it is what the search
    is measured against. Where the baseline is among the best, the best trial the searcher proposed is retrained
    too, so that the search's pick (``contract.final``) is always measured against it."""
    completed = [r for r in ranking.ranked(rows) if r[M.STATUS] == COMPLETED]
    best = completed[:top_k]
    if not best:
        return []
    if all(r[TRIAL_ID] == baseline_id for r in best):
        best += [r for r in completed if r[TRIAL_ID] != baseline_id][:1]
    chosen = [Retrain(r[TRIAL_ID], r["result"].config, r[TRIAL_ID] == baseline_id) for r in best]
    baseline = next((r for r in rows if r[TRIAL_ID] == baseline_id and r[M.STATUS] in (COMPLETED, PRUNED)), None)
    if baseline is not None and not any(c.baseline for c in chosen):
        chosen.append(Retrain(baseline_id, baseline["result"].config, True))
    return chosen


def population_candidates(
    rows: list[dict[str, Any]], top_k: int, schedule_of: Callable[[Any], list | None], base: dict[str, Any] | None
) -> list[Retrain]:
    """A population's candidates: the schedules of its ``top_k`` best completed members (``schedule_of`` reads one
    from a member's Tune result) and, with ``base`` (search.baseline), the base config trained as it is, which no
    member did (each changed its values as it trained)."""
    chosen = []
    for row in members_ranked(rows)[:top_k]:
        schedule = schedule_of(row["result"])
        if schedule:
            chosen.append(Retrain(row[TRIAL_ID], schedule[0]["config"], False, schedule))
    if chosen and base is not None:
        chosen.append(Retrain(final.BASE_SOURCE, base, True))
    return chosen


def members_ranked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A population's completed members, best first by their last epoch's val_acc: a member's best_val_acc may be
    an ancestor's (its checkpoint's history comes with the copy), its last epoch is its own schedule's end."""
    done = [r for r in rows if r[M.STATUS] == COMPLETED and isinstance(r.get(M.VAL_ACC), (int, float))]
    return sorted(done, key=lambda r: -r[M.VAL_ACC])


def entries(retrains: list[Retrain], seeds: int) -> list[dict[str, Any]]:
    """One trial per candidate and seed: the seeds follow the search's own train.seed, so none repeats it."""
    out = []
    for r in retrains:
        for i in range(seeds):
            train = copy.deepcopy(r.config)
            seed = int(train["train"]["seed"]) + 1 + i
            train["train"].update(seed=seed, evaluate_test=True)
            entry = {TRAIN: train, final.SOURCE: r.source, final.SEED: seed, final.BASELINE: r.baseline}
            if r.schedule:
                entry[FOLLOW] = with_values(r.schedule, seed=seed, evaluate_test=True)
            out.append(entry)
    return out


def final_trainable(train: Callable[..., None]) -> Callable[[dict[str, Any]], None]:
    """The search's trainable, given a final trial's training config (and the schedule it follows, if any)."""

    def train_final(config: dict[str, Any]) -> None:
        train(config[ENTRY][TRAIN], follow=config[ENTRY].get(FOLLOW))

    return train_final


class FinalCallback(MlflowCallback):
    """A final trial's run: the training config as its parameters, its candidate, seed and split as tags."""

    def __init__(self, tracker: MlflowTracker, split: str = TEST_SPLIT) -> None:
        super().__init__(tracker)
        self.split = split

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        entry = trial.config[ENTRY]
        tags = {ROLE_TAG: ROLE_FINAL, FINAL_SOURCE_TAG: entry[final.SOURCE], FINAL_SEED_TAG: str(entry[final.SEED])}
        tags[FINAL_SPLIT_TAG] = getattr(self, "split", TEST_SPLIT)  # a callback restored without one tags test
        if entry[final.BASELINE]:
            tags[BASELINE_TAG] = "true"
        self.tracker.trial_started(trial.trial_id, entry[TRAIN], tags)


class FinalProgress(Progress):
    """The console lines of the final phase: each run named by the trial whose config it retrains and its seed."""

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        entry = trial.config[ENTRY]
        what = "schedule" if entry.get(FOLLOW) else "config"
        self._say(
            f"final run {trial.trial_id} started: {final.named(entry[final.SOURCE])}'s {what}, seed {entry[final.SEED]}"
        )

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        result, entry = trial.last_result or {}, trial.config[ENTRY]
        test = result.get(M.TEST_ACC)
        self._say(
            f"final run {trial.trial_id} ({final.named(entry[final.SOURCE])}, seed {entry[final.SEED]}) "
            f"{trial_status(result, error=False)}: val_acc {result.get(M.VAL_ACC, float('nan')):.4f}"
            + (f", test_acc {test:.4f}" if test is not None else "")
        )


def final_path(cfg: SearchConfig) -> str:
    """The final phase's own Tune experiment: ``NAME/final`` beside the search's."""
    return f"{cfg.experiment_path.rstrip('/')}/{FINAL_EXPERIMENT}"


def started(cfg: SearchConfig) -> bool:
    """The final phase's Tune experiment exists: the search phase before it had ended (also by its time budget,
    whose stopped trials must stay stopped)."""
    return tune.Tuner.can_restore(final_path(cfg))


def split(cfg: SearchConfig) -> str:
    """The split the final phase measures: test, or val for an image folder without test/ (said plainly)."""
    from trainables.data import has_test_split

    return TEST_SPLIT if has_test_split(cfg.base.data) else VAL_SPLIT


def final_trial_name(trial) -> str:
    """A final run's name and folder in its experiment: ``final_<id>``."""
    return f"final_{trial.trial_id}"


def build_final_tuner(
    cfg: SearchConfig, tracker: MlflowTracker, train: Callable, runs: list[dict[str, Any]], at_once: int | None
):
    """The final phase's Tuner: restored where an earlier driver started it (the grid is the same: the search's
    results decide it), else new."""
    from search.plugins.disk_guard import DiskGuard
    from search.plugins.history import CsvHistory, JsonHistory
    from search.plugins.resources import reuse_actors, trial_resources

    s = cfg.search
    resources = trial_resources(s.cpus_per_trial, s.gpus_per_trial, s.workers_per_trial)
    trainable = tune.with_resources(final_trainable(train), resources)
    callbacks = [FinalCallback(tracker, split(cfg)), FinalProgress(), JsonHistory(), CsvHistory()]
    if cfg.local_experiment_dir:
        callbacks.append(DiskGuard(cfg.experiment_path))
    path = final_path(cfg)
    if tune.Tuner.can_restore(path):  # the callbacks come back from its tuner.pkl
        return tune.Tuner.restore(path, trainable, resume_unfinished=True, resume_errored=True)
    return tune.Tuner(
        trainable,
        param_space={ENTRY: tune.grid_search(runs)},
        tune_config=tune.TuneConfig(
            metric=M.OBJECTIVE,
            mode=M.OBJECTIVE_MODE,
            max_concurrent_trials=at_once,  # search.plugins.resources.trials_at_once
            reuse_actors=reuse_actors(s.workers_per_trial),
            trial_name_creator=final_trial_name,
            trial_dirname_creator=final_trial_name,
        ),
        run_config=tune.RunConfig(
            name=FINAL_EXPERIMENT,
            storage_path=cfg.experiment_path,
            callbacks=callbacks,
            failure_config=tune.FailureConfig(max_failures=s.max_failures),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),  # only to continue after a failure
            verbose=0,
        ),
    )


@dataclass
class FinalPhase:
    """What the final phase measured (``contract.final``) and Tune's results of its trials."""

    result: final.FinalResult
    grid: Any  # ray.tune.ResultGrid

    def champion(self):
        """The winner's completed run with the best last-epoch val_acc (chosen on val, as the winner was): the
        weights to register. None when the winner has no completed run."""
        done = [
            r
            for r in self.grid
            if r.error is None
            and r.config[ENTRY][final.SOURCE] == self.result.winner
            and trial_status(r.metrics or {}, error=False) == COMPLETED
        ]
        return max(done, key=lambda r: r.metrics[M.VAL_ACC], default=None)


def result_rows(grid) -> list[dict[str, Any]]:
    """One ``contract.final`` row per final trial, from Tune's results."""
    rows = []
    for result in grid:
        metrics, entry = result.metrics or {}, result.config[ENTRY]
        rows.append({
            final.SOURCE: entry[final.SOURCE],
            final.SEED: entry[final.SEED],
            final.BASELINE: entry[final.BASELINE],
            M.STATUS: trial_status(metrics, error=result.error is not None),
            M.VAL_ACC: metrics.get(M.VAL_ACC),
            M.TEST_ACC: metrics.get(M.TEST_ACC),
            final.HITS: metrics.get(M.FINAL_HITS),
        })  # fmt: skip
    return rows
