"""The end of a search: its summary (``contract.summary.SearchSummary``), the best trials' weights in MLflow, the
report, and the lines printed for the user."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from ray.tune.result import TRIAL_ID

from contract import metrics as M
from contract import ranking
from contract.files import BEST_CONFIG, REPORT_DIR, SCHEDULE_FILE
from contract.final import BASE_SOURCE, MEASURED, FinalResult, named
from contract.redact import redact
from contract.status import COMPLETED, ENDED, trial_status
from contract.summary import SearchSummary
from contract.tracking import (
    BASELINE_TAG,
    DEFAULT_TRACKING_URI,
    MODEL_ARTIFACTS,
    MODEL_CONFIG_FILE,
    MODEL_WEIGHTS_FILE,
    TRIAL_ID_TAG,
    UI_BEST_FIRST,
    UI_PAGE_RUNS,
    UI_TRAINING_VIEW,
    VAL_SPLIT,
)
from search.experiment.final_phase import FinalPhase
from search.experiment.search_config import SearchConfig
from search.tracking.model_registry import champion_uri, register_best
from search.tracking.tracker import PARENT, MlflowTracker

log = logging.getLogger(__name__)


def outcomes(grid) -> list[dict[str, Any]]:
    """One row per trial: its status, last result and Tune result (``contract.ranking`` reads such rows)."""
    rows = []
    for result in grid:
        metrics = result.metrics or {}
        if M.EPOCH not in metrics and result.error is None:
            continue  # not started: the search ended (its time budget) before the trial finished an epoch
        rows.append({**metrics, M.STATUS: trial_status(metrics, error=result.error is not None), "result": result})
    return rows


def summarize(
    grid, tracker: MlflowTracker, cfg: SearchConfig, storage: str, started: float, final_phase: FinalPhase | None = None
) -> SearchSummary:
    """Statuses, the best and the baseline trial, the final phase, the best trials' weights as artifacts of their
    runs and the winner's in the Model Registry."""
    tracker.drain(timeout_s=30)  # the trials' run ids, for the tags and artifacts below
    rows = outcomes(grid)
    summary = SearchSummary(
        counts={s: sum(r[M.STATUS] == s for r in rows) for s in ENDED}, wall_time_s=time.monotonic() - started
    )
    order = ranking.ranked(rows)
    if order:
        _describe_best(summary, order[0], tracker)
    _describe_baseline(summary, rows, tracker, cfg, storage)
    champion = (final_phase.champion() if final_phase else None) or (order[0]["result"] if order else None)
    registered = champion if cfg.search.register_model else None
    for row in [r for r in order if r[M.STATUS] == COMPLETED][: cfg.search.log_checkpoints]:
        if row["result"] is not registered:  # the registered champion's are logged once, below, with its MLflow model
            log_weights(tracker, row[TRIAL_ID], row["result"])
    if final_phase is not None:
        summary.final, summary.final_split = final_phase.result.to_dict(), final_phase.result.split
    if cfg.search.mode != "study":
        _recommend_schedule(summary, rows, tracker, cfg, final_phase)
    elif final_phase is not None:
        winner = next((r for r in rows if r[TRIAL_ID] == final_phase.result.winner), None)
        _recommend(summary, winner["result"].config if winner else summary.best_config, cfg)
    else:
        _recommend(summary, summary.best_config, cfg)
    if registered is not None:
        _register(summary, tracker, registered, cfg.name)
    return summary


def _register(summary: SearchSummary, tracker: MlflowTracker, champion, name: str) -> None:
    """The winner in the Model Registry: its weights and config, which are also an MLflow model."""
    trial_id = champion.metrics[TRIAL_ID]
    tracker.drain(timeout_s=30)  # a final run's run id
    log_weights(tracker, trial_id, champion, mlflow_model=True)
    tags = {TRIAL_ID_TAG: str(trial_id), M.VAL_ACC: f"{champion.metrics.get(M.VAL_ACC, float('nan')):.6f}"}
    if M.TEST_ACC in champion.metrics:
        tags[M.TEST_ACC] = f"{champion.metrics[M.TEST_ACC]:.6f}"
    version = register_best(tracker, tracker.run_id(trial_id), tags, name)
    if version is not None:
        summary.registered_model, summary.registered_version = name, version


def _describe_best(summary: SearchSummary, best: dict[str, Any], tracker: MlflowTracker) -> None:
    result = best["result"]
    summary.best_trial_id, summary.best_status = best[TRIAL_ID], best[M.STATUS]
    summary.best_val_acc, summary.best_params, summary.best_macs = (
        best[M.BEST_VAL_ACC],
        best.get(M.PARAMS),
        best.get(M.MACS),
    )
    summary.best_config, summary.best_path = result.config, result.path
    summary.best_run_id = tracker.run_id(best[TRIAL_ID])


def _recommend(summary: SearchSummary, config: dict[str, Any] | None, cfg: SearchConfig) -> None:
    """best_config.yaml: the configuration to retrain, the final phase's winner (else the search's best)."""
    import yaml

    if config is not None and cfg.local_experiment_dir:
        path = cfg.local_experiment_dir / BEST_CONFIG
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        summary.best_config_file = str(path)


def _recommend_schedule(
    summary: SearchSummary, rows: list[dict[str, Any]], tracker: MlflowTracker, cfg: SearchConfig, final_phase
) -> None:
    """A population's: each member's schedule.json on its run, and the recommendation: the final phase's winner (a
    member's schedule, or the base config), else the best member's schedule, in the results folder and on the
    parent run."""
    from contract.schedule import to_artifact
    from search.experiment.final_phase import members_ranked
    from search.population.check import mutable_keys
    from search.population.draw import base_member
    from search.population.lineage import schedule_of

    keys = mutable_keys(cfg)
    schedules = {r[TRIAL_ID]: s for r in rows if (s := schedule_of(r["result"]))}
    for trial_id, schedule in schedules.items():
        _log_schedule(tracker, tracker.run_id(trial_id), to_artifact(schedule, keys))
    best = next((r[TRIAL_ID] for r in members_ranked(rows)), None)  # by its last epoch: its own schedule's end
    winner = (final_phase.result.winner if final_phase is not None else None) or best
    if winner == BASE_SOURCE:
        _recommend(summary, base_member(cfg), cfg)
    elif winner in schedules:
        artifact = to_artifact(schedules[winner], keys)
        _log_schedule(tracker, tracker.parent_id, artifact)
        if cfg.local_experiment_dir:
            path = cfg.local_experiment_dir / SCHEDULE_FILE
            path.write_text(json.dumps(artifact, indent=1))
            summary.schedule_file = str(path)


def _log_schedule(tracker: MlflowTracker, run_id: str | None, artifact: dict[str, Any]) -> None:
    """``schedule.json`` on a run; a store that fails is a warning (the results folder and the checkpoints keep it)."""
    if run_id is None:
        return
    try:
        tracker.client.log_dict(run_id, artifact, SCHEDULE_FILE)
    except Exception as e:
        log.warning("could not log %s to MLflow run %s: %s", SCHEDULE_FILE, run_id, e)


def _describe_baseline(
    summary: SearchSummary, rows: list[dict[str, Any]], tracker: MlflowTracker, cfg: SearchConfig, storage: str
) -> None:
    from search.study.searcher import baseline_trial_id

    baseline = baseline_trial_id(cfg.name, storage) if cfg.search.mode == "study" else None  # a population: no study
    row = next((r for r in rows if r.get(TRIAL_ID) == baseline), None) if baseline else None
    if row is not None:
        summary.baseline_trial_id, summary.baseline_status = baseline, row[M.STATUS]
        summary.baseline_val_acc = row.get(M.BEST_VAL_ACC)
        tracker.set_tags(baseline, {BASELINE_TAG: "true"})


def log_weights(tracker: MlflowTracker, trial_id: str, result, mlflow_model: bool = False) -> None:
    """The best checkpoint's model weights (loadable with ``t2t.load_pretrained``) as an MLflow artifact; with
    ``mlflow_model`` the same folder is also an MLflow model (``search.tracking.mlflow_model``)."""
    import tempfile

    import torch

    from trainables.checkpoint import CHECKPOINT_FILE

    best = result.get_best_checkpoint(M.VAL_ACC, "max") if result.best_checkpoints else None  # None: it saved none
    checkpoint = best or result.checkpoint
    run_id = tracker.run_id(trial_id)
    if checkpoint is None or run_id is None:
        return
    try:
        with checkpoint.as_directory() as folder, tempfile.TemporaryDirectory() as out:
            state = torch.load(Path(folder) / CHECKPOINT_FILE, map_location="cpu", weights_only=True)
            weights = state.get("ema", state["model"])  # the weights that were evaluated: with EMA, the EMA ones
            torch.save(weights, Path(out) / MODEL_WEIGHTS_FILE)
            (Path(out) / MODEL_CONFIG_FILE).write_text(json.dumps(state["config"], indent=2))
            if mlflow_model and "model_config" in state:  # a checkpoint of an older version has weights alone
                _add_mlflow_model(state["model_config"], weights, Path(out), trial_id)
            tracker.client.log_artifacts(run_id, out, artifact_path=MODEL_ARTIFACTS)
    except Exception as e:
        log.warning("could not log the weights of trial %s to MLflow: %s", trial_id, e)


def _add_mlflow_model(model_config: dict, weights: dict, folder: Path, trial_id: str) -> None:
    """The MLflow model beside the weights; a failure only warns: the weights and their registration go ahead."""
    from search.tracking.mlflow_model import save_mlflow_model

    try:
        save_mlflow_model(model_config, weights, folder)
    except Exception as e:
        log.warning("could not save trial %s's weights as an MLflow model (t2t.load_pretrained still reads them): %s",
                    trial_id, e)  # fmt: skip


def write_report(cfg: SearchConfig, parent_id: str) -> str | None:
    """The analysis report, beside the results and on the parent run; a failure here only warns."""
    from analysis.report import attach, make_report

    folder = cfg.local_experiment_dir
    out = folder / REPORT_DIR if folder else Path("reports") / cfg.name
    try:
        exp, files = make_report(parent_id, cfg.resolved_tracking_uri, out)
        attach(exp, files)
    except Exception as e:  # the search's results are safe; a report can be made again later
        log.warning("could not write the report (%s); make it with: python -m analysis.report %s", e, parent_id)
        return None
    return str(out / "report.html")


def finish(
    summary: SearchSummary, tracker: MlflowTracker, cfg: SearchConfig, parent_id: str, status: str, reason: str | None
) -> int:
    """The parent run's summary and end, search_summary.json, the report and the printed summary; the exit code.
    ``reason``: why the search ended early (its time budget), or None."""
    tracker.log_metrics(PARENT, summary.metrics())
    tracker.set_tags(PARENT, summary.tags())
    tracker.trial_ended(PARENT, status, reason)
    tracker.close()
    if cfg.local_experiment_dir:
        summary.write(cfg.local_experiment_dir)
    summary.report = write_report(cfg, parent_id) if cfg.search.report else None
    if reason:
        print(f"{reason}: the trials still running then are pruned")
    print("\n".join(summary_lines(summary, cfg, parent_id, tracker.experiment_id)))
    return 0 if summary.finished else 1


def summary_lines(
    summary: SearchSummary, cfg: SearchConfig, parent_id: str, experiment_id: str | None = None
) -> list[str]:
    """The printed summary: the counts, the final phase first, then the search-time numbers and where
    the results, the report and the runs are."""
    counts = ", ".join(f"{summary.counts.get(s, 0)} {s}" for s in ENDED)
    lines = ["", f"search {cfg.name!r} done in {summary.wall_time_s:.0f} s: {counts}"]
    final = summary.final_result
    if final is not None:
        lines += final_lines(summary, final, cfg)
    if summary.best_trial_id is not None:
        lines += best_lines(summary, labelled=final is not None)
    else:
        lines.append(
            "no trial finished without diverging or failing: their reasons are above and in MLflow "
            "(a diverging search often needs a lower base.optim.lr or base.optim.clip_grad)"
        )
    if summary.report:
        lines.append(f"report:   {summary.report}")
    elif not cfg.search.report:
        lines.append(f"report:   not written (search.report: false); make one: python -m analysis.report {parent_id}")
    uri = redact(cfg.resolved_tracking_uri)
    compare = how_to_compare(uri, experiment_id, cfg.trials_planned)
    lines += [
        f"results:  {redact(cfg.experiment_path)}",
        f"MLflow:   experiment {cfg.name!r}, parent run {parent_id} at {uri}; {compare}",
    ]
    return lines


def final_lines(summary: SearchSummary, final: FinalResult, cfg: SearchConfig) -> list[str]:
    """The final phase first: it is the number to trust (the search's own val numbers are what it selected on)."""
    split = final.split
    lines = [f"final phase ({split} split; trained from scratch, {cfg.search.final.seeds} seeds per configuration; "
             "mean ± std, 95% interval over seeds):"]  # fmt: skip
    if split == VAL_SPLIT:
        lines.append("  no test split: these are val numbers, the data that chose the pick and the winner, so theirs "
                     "are biased upward")  # fmt: skip
    for source in final.ranked:
        c, ends = final.candidate(source), final.ends(source)
        head = f"  {', '.join(final.roles(source)) or 'candidate'}:"
        if c is None:
            lines.append(f"{head:<26}{named(source)}: no run completed with a number on {split} ({ends})")
            continue
        complete = final.complete(source)
        left_out = "" if complete else ": the others are left out of its numbers"
        if not complete and any(final.complete(x.source) for x in final.candidates):
            left_out += ", and it may not win (another candidate completed every run)"
        lines.append(f"{head:<26}{named(source)}: {MEASURED[split]} {c.measured.describe()}; val {c.val.mean:.4f}; "
                     f"runs {ends}{left_out}")  # fmt: skip
    winner = final.candidate(final.winner)
    if winner is not None and winner.measured.images_error():
        lines.append(f"  the images' own error, at the winner's accuracy: {winner.measured.images_error()}")
    for source, gain in final.gains.items():
        lines.append(f"  {named(source)} - baseline: {gain.describe()}")
    lines.append(f"  {final.verdict()}")
    return lines + winner_lines(summary, "the winner")


def best_lines(summary: SearchSummary, labelled: bool = False) -> list[str]:
    """The search-time numbers (val, best epoch, one seed): the best trial and the baseline's gain on val."""
    lines = ["search-time numbers (val: the data the search selected on; best epoch, one seed):"] if labelled else []
    lines += [
        f"best trial {summary.best_trial_id} ({summary.best_status}): val_acc {summary.best_val_acc:.4f}, "
        f"{(summary.best_params or 0) / 1e6:.2f}M parameters, {(summary.best_macs or 0) / 1e6:.1f} MMACs",
    ]
    if not labelled:
        lines += winner_lines(summary, "it")
    if summary.baseline_val_acc is not None:
        line = (
            f"baseline trial {summary.baseline_trial_id} (the base config's values, {summary.baseline_status}): "
            f"val_acc {summary.baseline_val_acc:.4f}"
        )
        if summary.baseline_status == COMPLETED:
            line += f"; {100 * (summary.best_val_acc - summary.baseline_val_acc):+.2f} points on val"
        else:  # a truncated run's number is no base to measure a gain from
            line += " at the epoch it was stopped: no gain to measure against"
        lines.append(line)
    return lines


def winner_lines(summary: SearchSummary, what: str) -> list[str]:
    """How to retrain the recommended configuration, and where its registered weights are."""
    lines = []
    if summary.schedule_file:
        lines.append(f"  retrain {what}'s schedule: python -m trainables.train --schedule {summary.schedule_file}")
    if summary.best_config_file:
        lines.append(f"  retrain {what}: python -m trainables.train --config {summary.best_config_file}")
    if summary.registered_version:
        lines.append(f"  registered: {champion_uri(summary.registered_model)} (version {summary.registered_version})")
    return lines


def how_to_compare(uri: str, experiment_id: str | None = None, trials: int = 0) -> str:
    """Where to look at the runs. MLflow 3.17's UI opens every experiment on its GenAI pages unless the address asks
    for the model-training view (``UI_TRAINING_VIEW``), whatever the experiment's kind tag says; a search of more
    trials than that view loads at once is listed best first (``UI_BEST_FIRST``)."""
    view = UI_TRAINING_VIEW + (f"&{UI_BEST_FIRST}" if trials > UI_PAGE_RUNS else "")
    page = f"/#/experiments/{experiment_id}/runs?{view}" if experiment_id else ""
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI (on a cluster: through the tunnel)
        compare = f"compare the trials at {uri.rstrip('/')}{page}"
        if "127.0.0.1" in uri:
            compare += f" (from your machine: `ray attach cluster.yaml -p 5000`, then http://localhost:5000{page})"
        return compare
    ui = "mlflow ui" if uri == DEFAULT_TRACKING_URI else f"mlflow ui --backend-store-uri {uri}"
    return f"compare the trials with `{ui}`" + (f", then open http://127.0.0.1:5000{page}" if page else "")
