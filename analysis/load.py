"""An experiment as plain tables, from MLflow alone or from Tune's experiment folder.

``trials``: one row per trial (trial_id, status, reason, baseline, best_val_acc, val_acc, val_loss, epochs, params,
macs, trial_time_s, start_s, end_s, then one column per configuration key, e.g. ``model.depth``). ``baseline`` is
true for the trial that trained the base config's own values (``search.baseline``).
``history``: one row per trial and epoch (trial_id, epoch, val_acc, val_loss, train_loss, epoch_time_s, time_s).
Times are seconds since the search started.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from contract import metrics as M
from contract.status import PRUNED, RUNNING
from contract.tracking import BASELINE_TAG

HISTORY_METRICS = (M.VAL_ACC, M.VAL_LOSS, M.TRAIN_LOSS, M.EPOCH_TIME_S)


class NoTrialsError(ValueError):
    """The experiment has no trial with a finished epoch yet."""


@dataclass
class Experiment:
    name: str
    source: str  # where it was read from
    trials: pd.DataFrame
    history: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)  # the search's config (search.*, base.*, space)
    parent_run_id: str | None = None
    tracking_uri: str | None = None

    @property
    def space(self) -> dict[str, Any]:
        return self.settings.get("space") or {}

    def setting(self, key: str, default: Any = None) -> Any:
        node: Any = self.settings
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested config -> dotted keys (as search.tracking logs them; analysis does not import the search layer)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _parse(value: str) -> Any:
    """An MLflow param (always a string, written with ``str``) back to its value: None, numbers, lists, bools."""
    if value == "None":
        return None
    try:
        return json.loads(value)  # numbers such as 1e-08, which YAML 1.1 reads as a string
    except ValueError:
        pass
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value


def _finish(name: str, source: str, rows: list[dict], history: list[dict], **kwargs: Any) -> Experiment:
    if not rows or not history:
        raise NoTrialsError(f"experiment {name!r} ({source}) has no trial with a finished epoch yet")
    hist = pd.DataFrame(history).sort_values(["trial_id", M.EPOCH]).reset_index(drop=True)
    for key in HISTORY_METRICS:  # a trial that diverged in its first epoch has no time or loss
        if key not in hist:
            hist[key] = float("nan")
    first = hist.groupby("trial_id").first()
    start = (first["timestamp"] - first[M.EPOCH_TIME_S].fillna(0)).min()  # when the first epoch began
    hist["time_s"] = hist.pop("timestamp") - start
    trials = pd.DataFrame(rows)
    spans = hist.groupby("trial_id").agg(
        epochs=(M.EPOCH, "max"),
        trial_time_s=(M.EPOCH_TIME_S, "sum"),
        end_s=("time_s", "max"),
        best_val_acc=(M.VAL_ACC, "max"),
    )
    trials = trials.drop(columns=[c for c in spans.columns if c in trials.columns]).join(spans, on="trial_id")
    trials["start_s"] = trials["end_s"] - trials["trial_time_s"]
    return Experiment(name, source, trials.reset_index(drop=True), hist, **kwargs)


def from_mlflow(experiment: str, tracking_uri: str) -> Experiment:
    """``experiment``: an MLflow experiment name (its latest search) or a parent run id."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is not None:
        parents = client.search_runs(
            [exp.experiment_id], "tags.`search.role` = 'parent'", order_by=["attributes.start_time DESC"], max_results=1
        )
        if not parents:
            raise NoTrialsError(f"MLflow experiment {experiment!r} at {tracking_uri} has no search parent run")
        parent = parents[0]
    else:
        try:
            parent = client.get_run(experiment)
        except MlflowException:
            raise ValueError(
                f"{experiment!r} is neither an MLflow experiment nor a run id at {tracking_uri}, nor a folder"
            ) from None
    settings = {}
    with contextlib.suppress(MlflowException, OSError, ValueError):
        settings = json.loads(Path(client.download_artifacts(parent.info.run_id, "config.json")).read_text())
    children = client.search_runs(
        [parent.info.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'", max_results=10000
    )
    rows, history = [], []
    for run in children:
        trial_id = run.data.tags.get("trial_id", run.info.run_id)
        row = {
            "trial_id": trial_id,
            "run_id": run.info.run_id,
            M.STATUS: run.data.tags.get(M.STATUS, RUNNING),
            M.REASON: run.data.tags.get(M.REASON),
            "baseline": run.data.tags.get(BASELINE_TAG) == "true",
            M.PARAMS: run.data.metrics.get(M.PARAMS),
            M.MACS: run.data.metrics.get(M.MACS),
            M.VAL_ACC: run.data.metrics.get(M.VAL_ACC),
            M.VAL_LOSS: run.data.metrics.get(M.VAL_LOSS),
        }
        row.update({k: _parse(v) for k, v in run.data.params.items()})
        rows.append(row)
        series: dict[int, dict[str, Any]] = {}
        for key in HISTORY_METRICS:
            for m in client.get_metric_history(run.info.run_id, key):
                point = series.setdefault(
                    m.step, {"trial_id": trial_id, M.EPOCH: m.step, "timestamp": m.timestamp / 1000}
                )
                point[key] = m.value
        history.extend(p for p in series.values() if M.VAL_ACC in p)
    name = exp.name if exp else parent.info.run_name
    return _finish(
        name,
        f"MLflow {tracking_uri}",
        rows,
        history,
        settings=settings,
        parent_run_id=parent.info.run_id,
        tracking_uri=tracking_uri,
    )


def from_tune(folder: str | Path) -> Experiment:
    """A Tune experiment folder (``ray_results/NAME``): each trial's params.json and result.json."""
    folder = Path(folder)
    rows, history = [], []
    for result_file in sorted(folder.glob("*/result.json")):
        results = [json.loads(line) for line in result_file.read_text().splitlines() if line.strip()]
        if not results:
            continue
        last = results[-1]
        row = {
            "trial_id": last["trial_id"],
            M.STATUS: last.get(M.STATUS, RUNNING),
            M.REASON: last.get(M.REASON),
            M.PARAMS: last.get(M.PARAMS),
            M.MACS: last.get(M.MACS),
            M.VAL_ACC: last.get(M.VAL_ACC),
            M.VAL_LOSS: last.get(M.VAL_LOSS),
            **_flatten(last.get("config", {})),
        }
        rows.append(row)
        seen = set()
        for r in results:
            if r.get(M.EPOCH) in seen or M.VAL_ACC not in r:
                continue
            seen.add(r[M.EPOCH])
            history.append(
                {
                    "trial_id": last["trial_id"],
                    M.EPOCH: r[M.EPOCH],
                    "timestamp": r["timestamp"],
                    **{k: r.get(k) for k in HISTORY_METRICS},
                }
            )
    settings = {}
    config = folder / "search_config.json"  # written by search.run
    if config.is_file():
        settings = json.loads(config.read_text())
    # A trial's last result says "running" when the scheduler stopped it (Tune records no final row): once
    # the search is over (summary written), that is a pruned trial.
    summary_file = folder / "search_summary.json"
    summary = json.loads(summary_file.read_text()) if summary_file.is_file() else {}
    for row in rows:
        row["baseline"] = row["trial_id"] == summary.get("baseline_trial_id")
        if summary and row[M.STATUS] == RUNNING:
            row[M.STATUS] = PRUNED
    return _finish(folder.name, f"Tune folder {folder}", rows, history, settings=settings)


def load(experiment: str, tracking_uri: str) -> Experiment:
    """A Tune folder if ``experiment`` is one, else MLflow (an experiment name or a parent run id)."""
    if Path(experiment).is_dir():
        return from_tune(experiment)
    return from_mlflow(experiment, tracking_uri)
