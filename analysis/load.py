"""An experiment as plain tables, from MLflow alone or from Tune's experiment folder.

``trials``: one row per trial (trial_id, status, reason, baseline, best_val_acc, val_acc, val_loss, epochs, params,
macs, trial_time_s, start_s, end_s, then one column per configuration key, e.g. ``model.depth``). ``baseline`` is
true for the trial that trained the base config's own values (its run has ``contract.tracking.BASELINE_TAG``).
``history``: one row per trial and epoch (trial_id, epoch, val_acc, val_loss, train_loss, epoch_time_s, time_s).
Times are seconds since the search started. Both hold the search's trials only.
``final``: one row per run of the final phase (``FINAL_COLUMNS``), kept apart so that no final run is ever counted,
ranked or fitted as a search trial; empty where no final phase ran or the experiment was read from a Tune folder.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from contract import metrics as M
from contract.files import SCHEDULE_FILE, SEARCH_CONFIG
from contract.final import BASELINE, HITS, SEED, SOURCE
from contract.flat import flatten
from contract.status import RUNNING, trial_status
from contract.summary import SearchSummary
from contract.tracking import (
    BASELINE_TAG,
    CONFIG_ARTIFACT,
    COPY_TAG_PREFIX,
    FINAL_SEED_TAG,
    FINAL_SOURCE_TAG,
    FINAL_SPLIT_TAG,
    ROLE_FINAL,
    ROLE_PARENT,
    ROLE_TAG,
    ROLE_TRIAL,
    TEST_SPLIT,
    TRIAL_ID_TAG,
    VAL_SPLIT,
    child_runs,
    hits_from_tags,
)

HISTORY_METRICS = (M.VAL_ACC, M.VAL_LOSS, M.TRAIN_LOSS, M.EPOCH_TIME_S, M.GPU_UTILIZATION, M.GPU_MEMORY_PEAK)
# A final run: contract.final's row (val_acc is the run's last epoch's), its epochs, and its own ids.
FINAL_COLUMNS = ["trial_id", "run_id", SOURCE, SEED, BASELINE, M.STATUS, M.VAL_ACC, M.TEST_ACC, M.TEST_LOSS, HITS,
                 "split", "epochs"]  # fmt: skip
# A population member's copy of another: its epoch, the member, the one it copied and what changed (a copy tag's text).
COPY_COLUMNS = ["epoch", "trial_id", "copied", "changes"]
BULK_RUNS = 500  # runs per bulk history query: well under SQLite's limit on a query's parameters
TUNE_ERROR_FILES = ("error.txt", "error.pkl")  # what Tune writes in the folder of a trial that raised


class NoTrialsError(ValueError):
    """The experiment has no trial with a finished epoch yet."""


@dataclass
class Experiment:
    """A search as the report reads it: its trials, their histories, its settings, its final runs."""

    name: str
    source: str  # where it was read from
    trials: pd.DataFrame
    history: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)  # the search's config (search.*, base.*, space)
    parent_run_id: str | None = None
    tracking_uri: str | None = None
    final: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=FINAL_COLUMNS))
    # A population's (search.mode pbt or pb2): each copy a member made (COPY_COLUMNS), and the recommended schedule
    # (the parent run's schedule.json, contract.schedule.to_artifact), if any.
    copies: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=COPY_COLUMNS))
    schedule: dict[str, Any] | None = None

    @property
    def final_split(self) -> str:
        """What the final runs were measured on: test, or val for an image folder without test/."""
        splits = set(self.final["split"].dropna()) if "split" in self.final else set()
        return VAL_SPLIT if splits == {VAL_SPLIT} else TEST_SPLIT

    @property
    def space(self) -> dict[str, Any]:
        """The search space as the search's config gave it."""
        return self.settings.get("space") or {}

    def setting(self, key: str, default: Any = None) -> Any:
        """A setting of the search's config by its dotted key (``search.scheduler``), or ``default``."""
        node: Any = self.settings
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node


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


def _measured(point: dict[str, Any]) -> bool:
    """An epoch the history keeps: one that was validated, or the one that diverged (a loss, no accuracy)."""
    return M.VAL_ACC in point or M.TRAIN_LOSS in point


def _finish(name: str, source: str, rows: list[dict], history: list[dict], **kwargs: Any) -> Experiment:
    if not rows or not history:
        raise NoTrialsError(f"experiment {name!r} ({source}) has no trial with a finished epoch yet")
    hist = pd.DataFrame(history).sort_values(["trial_id", M.EPOCH]).reset_index(drop=True)
    for key in HISTORY_METRICS:  # a trial that diverged in its first epoch has no time or accuracy
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
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    parent, name = _parent_run(client, experiment, tracking_uri)
    run_id = parent.info.run_id
    children = child_runs(client, parent.info.experiment_id, run_id)
    histories = metric_histories(client, [run.info.run_id for run in children], HISTORY_METRICS)
    rows, history, final, copies = [], [], [], []
    for run in children:
        role = run.data.tags.get(ROLE_TAG, ROLE_TRIAL)  # a run without a role is a trial of an older search
        if role == ROLE_FINAL:
            final.append(_final_row(run, histories[run.info.run_id, M.VAL_ACC]))
        elif role == ROLE_TRIAL:
            rows.append(_run_row(run))
            history.extend(_run_history(histories, run.info.run_id, rows[-1]["trial_id"]))
            copies.extend(_copies(run, rows[-1]["trial_id"]))
    return _finish(
        name,
        f"MLflow {tracking_uri}",
        rows,
        history,
        settings=_run_settings(client, run_id),
        parent_run_id=run_id,
        tracking_uri=tracking_uri,
        final=pd.DataFrame(final, columns=FINAL_COLUMNS),
        copies=pd.DataFrame(copies, columns=COPY_COLUMNS).sort_values(["epoch", "trial_id"], ignore_index=True),
        schedule=_artifact(client, run_id, SCHEDULE_FILE),
    )


def _copies(run: Any, trial_id: str) -> list[dict[str, Any]]:
    """The copies a population member made, from its copy tags ("epoch E: copied trial X; changes")."""
    out = []
    for key, text in run.data.tags.items():
        found = (
            re.fullmatch(r"epoch (\d+): copied trial (\S+); (.*)", text) if key.startswith(COPY_TAG_PREFIX) else None
        )
        if found:
            out.append({"epoch": int(found[1]), "trial_id": trial_id, "copied": found[2], "changes": found[3]})
    return out


def _artifact(client: Any, run_id: str, name: str) -> dict[str, Any] | None:
    """A JSON artifact of a run, or None where it has none."""
    from mlflow.exceptions import MlflowException

    with contextlib.suppress(MlflowException, OSError, ValueError):
        if any(f.path == name for f in client.list_artifacts(run_id)):
            return json.loads(Path(client.download_artifacts(run_id, name)).read_text())
    return None


def _parent_run(client: Any, experiment: str, tracking_uri: str) -> tuple[Any, str]:
    """The latest search's parent run in the MLflow experiment named ``experiment``, else the run of that id; and
    the name of the report (the experiment's, or the run's)."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            run = client.get_run(experiment)
        except MlflowException:
            raise ValueError(
                f"{experiment!r} is neither an MLflow experiment nor a run id at {tracking_uri}, nor a folder"
            ) from None
        return run, run.info.run_name
    parents = client.search_runs(
        [exp.experiment_id],
        f"tags.`{ROLE_TAG}` = '{ROLE_PARENT}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not parents:
        raise NoTrialsError(f"MLflow experiment {experiment!r} at {tracking_uri} has no search parent run")
    return parents[0], exp.name


def _run_settings(client: Any, run_id: str) -> dict[str, Any]:
    """The search's config, logged as an artifact of its parent run (empty if it is missing)."""
    return _artifact(client, run_id, CONFIG_ARTIFACT) or {}


def _run_row(run: Any) -> dict[str, Any]:
    tags, values = run.data.tags, run.data.metrics
    return {
        "trial_id": tags.get(TRIAL_ID_TAG, run.info.run_id),
        "run_id": run.info.run_id,
        M.STATUS: tags.get(M.STATUS, RUNNING),
        M.REASON: tags.get(M.REASON),
        "baseline": tags.get(BASELINE_TAG) == "true",
        **{key: values.get(key) for key in (M.PARAMS, M.MACS, M.VAL_ACC, M.VAL_LOSS)},
        **{key: _parse(value) for key, value in run.data.params.items()},
    }


def _final_row(run: Any, val_acc: list) -> dict[str, Any]:
    """A final run as ``FINAL_COLUMNS``: its val_acc is the one at its highest step (its last epoch), read from its
    history ``val_acc`` rather than MLflow's latest value, which a late re-log of an earlier step could replace."""
    tags, values = run.data.tags, run.data.metrics
    val = max(val_acc, key=lambda m: (m.step, m.timestamp), default=None)
    seed = _parse(tags.get(FINAL_SEED_TAG) or run.data.params.get("train.seed") or "None")
    return {
        "trial_id": tags.get(TRIAL_ID_TAG, run.info.run_id),
        "run_id": run.info.run_id,
        SOURCE: tags.get(FINAL_SOURCE_TAG),
        SEED: seed if isinstance(seed, int) and not isinstance(seed, bool) else None,
        BASELINE: tags.get(BASELINE_TAG) == "true",
        M.STATUS: tags.get(M.STATUS, RUNNING),
        M.VAL_ACC: None if val is None else val.value,
        M.TEST_ACC: values.get(M.TEST_ACC),
        M.TEST_LOSS: values.get(M.TEST_LOSS),
        HITS: hits_from_tags(tags),
        "split": tags.get(FINAL_SPLIT_TAG, TEST_SPLIT),  # a final run without the tag is read as measured on test
        "epochs": None if val is None else val.step,
    }


def metric_histories(client: Any, run_ids: list[str], keys: tuple[str, ...]) -> dict[tuple[str, str], list]:
    """(run id, key) -> the metric's history (MLflow ``Metric``s, oldest first) for every run and key.

    Where the store is a database (MLflow's SQLAlchemy store: sqlite, PostgreSQL) one query per key and
    ``BULK_RUNS`` runs: one per run and key took 8-10 s of a 1,000-trial report's load, the bulk queries
    0.35-0.64 s. The client has no public bulk call, so the store is reached through it; a store without one (a
    tracking server's REST store) is asked run by run."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    bulk = getattr(store, "get_metric_history_bulk", None)
    histories: dict[tuple[str, str], list] = {(run_id, key): [] for run_id in run_ids for key in keys}
    if bulk is None:
        for run_id, key in histories:
            histories[run_id, key] = list(client.get_metric_history(run_id, key))
        return histories
    for key in keys:
        for start in range(0, len(run_ids), BULK_RUNS):
            for m in bulk(run_ids[start : start + BULK_RUNS], key, max_results=None):  # ordered by run, then time
                histories[m.run_id, key].append(m)
    return histories


def _run_history(histories: dict[tuple[str, str], list], run_id: str, trial_id: str) -> list[dict[str, Any]]:
    """One row per epoch of a trial's run that has a val_acc."""
    series: dict[int, dict[str, Any]] = {}
    for key in HISTORY_METRICS:
        for m in histories[run_id, key]:
            point = series.setdefault(m.step, {"trial_id": trial_id, M.EPOCH: m.step, "timestamp": m.timestamp / 1000})
            point[key] = m.value
    return [p for p in series.values() if _measured(p)]


def from_tune(folder: str | Path) -> Experiment:
    """A Tune experiment folder (``ray_results/NAME``): each trial's params.json and result.json."""
    folder = Path(folder)
    summary = SearchSummary.read(folder)  # written when the search ended
    rows, history = [], []
    for result_file in sorted(folder.glob("*/result.json")):
        results = _json_lines(result_file)
        if results:
            rows.append(_trial_row(result_file.parent, results[-1], ended=summary is not None))
            history.extend(_trial_history(results[-1]["trial_id"], results))
    for row in rows:
        row["baseline"] = summary is not None and row["trial_id"] == summary.baseline_trial_id
    config = folder / SEARCH_CONFIG  # written by search.run
    settings = _json_lines(config)[0] if config.is_file() else {}
    return _finish(folder.name, f"Tune folder {folder}", rows, history, settings=settings)


def _json_lines(path: Path) -> list[Any]:
    """The JSON values of ``path`` (one per line, or one document); a damaged file is a ``ValueError`` naming it."""
    text = path.read_text(errors="replace")
    try:
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    except json.JSONDecodeError:
        pass
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not JSON ({e.msg} at line {e.lineno}): a damaged Tune folder") from None


def _trial_row(trial_dir: Path, last: dict[str, Any], ended: bool) -> dict[str, Any]:
    """A trial from its last result. Tune records no final row for a trial the scheduler stopped, so its last
    result says "running"; once the search has ended, contract.status names its end (pruned, or failed where
    Tune wrote the trial's error file)."""
    error = next((trial_dir / name for name in TUNE_ERROR_FILES if (trial_dir / name).is_file()), None)
    running = not ended and error is None  # a search still running: its trials report their own status
    status = last.get(M.STATUS, RUNNING) if running else trial_status(last, error=error is not None)
    return {
        "trial_id": last["trial_id"],
        M.STATUS: status,
        M.REASON: last.get(M.REASON) or _error_reason(error),
        **{key: last.get(key) for key in (M.PARAMS, M.MACS, M.VAL_ACC, M.VAL_LOSS)},
        **flatten(last.get("config", {})),
    }


def _error_reason(error_file: Path | None) -> str | None:
    """The last line of Tune's error.txt (the exception), if the trial has one."""
    if error_file is None or error_file.suffix != ".txt":
        return None
    lines = error_file.read_text(errors="replace").strip().splitlines()
    return lines[-1] if lines else None


def _trial_history(trial_id: str, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per epoch that has a val_acc, the first report of an epoch where a restarted trial repeated it."""
    history, seen = [], set()
    for r in results:
        if r.get(M.EPOCH) in seen or not _measured(r):
            continue
        seen.add(r[M.EPOCH])
        point = {"trial_id": trial_id, M.EPOCH: r[M.EPOCH], "timestamp": r["timestamp"]}
        history.append({**point, **{k: r.get(k) for k in HISTORY_METRICS}})
    return history


def load(experiment: str, tracking_uri: str) -> Experiment:
    """A Tune folder if ``experiment`` is one, else MLflow (an experiment name or a parent run id)."""
    if Path(experiment).is_dir():
        return from_tune(experiment)
    return from_mlflow(experiment, tracking_uri)
