"""MLflow names of a search: the default store, the tags that find its runs again, and the runs' roles.

One parent run per search (tags ``search.role=parent`` and ``search.id``, and the Tune experiment path), one child
run per trial (``mlflow.parentRunId`` and ``trial_id``). The search writes these; ``analysis`` finds the runs by them.
"""

from __future__ import annotations

from typing import Any

from contract.metrics import BEST_VAL_ACC

# MLflow's own default since 3.7: an sqlite file in the working directory, which `mlflow ui` opens with no arguments.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"

PARENT_RUN_TAG = "mlflow.parentRunId"  # MLflow's own tag: the UI nests a run under this parent
TRIAL_ID_TAG = "trial_id"  # a child run's Ray trial id
SEARCH_ID_TAG = "search.id"  # the parent run's search id (contract.files.SEARCH_ID): how a resume finds it
EXPERIMENT_PATH_TAG = "t2t.experiment_path"  # the parent run's Tune experiment folder
ROLE_TAG = "search.role"
ROLE_PARENT = "parent"  # the value of ROLE_TAG on a search's parent run
ROLE_TRIAL = "trial"  # ... on a search trial's run (a run without ROLE_TAG is one too: searches made before it)
ROLE_FINAL = "final"  # ... on a final-phase run: a candidate retrained with one seed and measured on test
FINAL_SOURCE_TAG = "search.final.source"  # a final run's candidate: the search trial id whose config it retrains
FINAL_SEED_TAG = "search.final.seed"  # a final run's train.seed
# A population member's run: the id of the schedule segment its last logged epoch belongs to (contract.schedule).
SEGMENT_TAG = "search.population.segment"
# A population member's run: each copy of another member's checkpoint, search.population.copy.SEGMENT -> one line.
COPY_TAG_PREFIX = "search.population.copy."
FINAL_SPLIT_TAG = "search.final.split"  # what a final run is measured on: TEST_SPLIT, or VAL_SPLIT without one
FINAL_HITS_TAG = "search.final.hits"  # a final run's per-image hits (contract.hits), in parts: .0, .1, ...
HITS_TAG_CHARS = 5000  # characters per part: MLflow keeps at most 8,000 in a tag's value
BASELINE_TAG = "search.baseline"  # "true" on the run of the trial that trained the base config's values
OPTUNA_STORAGE_TAG = "optuna.storage"  # the parent run's Optuna study URL
NODE_IP_TAG = "ray.node_ip"  # a trial run's latest node
NODE_IPS_TAG = "ray.node_ips"  # every node a trial ran on, in order ("a,b" after a node died)
GIT_REVISION_TAG = "git.revision"
VERSION_TAG_PREFIX = "version."  # version.torch, version.ray, ... on the parent run

# Artifacts of the parent run.
CONFIG_ARTIFACT = "config.json"  # the search's whole config
SPACE_ARTIFACT = "search_space.json"
REPORT_ARTIFACTS = "report"  # the folder the report's files are logged to
MODEL_ARTIFACTS = "model"  # a trial run's folder of its best weights and their training config:
MODEL_WEIGHTS_FILE = "model.pt"  # loadable with t2t.load_pretrained
MODEL_CONFIG_FILE = "config.json"

# The experiment's kind, MLflow's own tag: its UI opens a training experiment on the runs (GenAI ones on traces).
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND_TRAINING = "custom_model_development"
# MLflow 3.17's UI picks its GenAI or its model-training pages from the address (else the browser's last choice),
# not from the kind: the query that opens an experiment on its training runs.
UI_TRAINING_VIEW = "workflowType=machine_learning"
# That view loads 100 runs a page, newest first: past a page, the address that lists the leading trials first.
UI_PAGE_RUNS = 100
UI_BEST_FIRST = f"orderByKey=metrics.%60{BEST_VAL_ACC}%60&orderByAsc=false"

# A trial run's data set inputs: one per split, told apart by MLflow's context tag.
DATASET_CONTEXT_TAG = "mlflow.data.context"
TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT = "train", "val", "test"
SYSTEM_METRICS_PREFIX = "system/"  # MLflow's system-metrics monitor names its metrics system/cpu_utilization_percentage

# The Model Registry: the search's winner is a version of the model named after the experiment, with this alias.
CHAMPION_ALIAS = "champion"


RUNS_PAGE, MAX_PAGES = 1000, 1000  # runs per search_runs call, and calls at most (a million runs)


def child_runs(client: Any, experiment_id: str, parent_id: str) -> list:
    """Every run nested under ``parent_id``, page by page: one ``search_runs`` call returns at most one page."""
    runs, token = [], None
    for _ in range(MAX_PAGES):
        page = client.search_runs([experiment_id], filter_string=f"tags.`{PARENT_RUN_TAG}` = '{parent_id}'",
                                  max_results=RUNS_PAGE, page_token=token)  # fmt: skip
        runs.extend(page)
        token = page.token
        if not token:
            break
    return runs


def hits_tags(encoded: str) -> dict[str, str]:
    """A final run's per-image hits as tags: ImageNet's 50,000 val images take 2 parts."""
    parts = range(0, len(encoded), HITS_TAG_CHARS)
    return {f"{FINAL_HITS_TAG}.{i}": encoded[start : start + HITS_TAG_CHARS] for i, start in enumerate(parts)}


def hits_from_tags(tags: dict[str, str]) -> str | None:
    """The hits ``hits_tags`` spread over a run's tags, or None where it has none."""
    parts = []
    for i in range(len(tags)):
        if f"{FINAL_HITS_TAG}.{i}" not in tags:
            break
        parts.append(tags[f"{FINAL_HITS_TAG}.{i}"])
    return "".join(parts) or None


def no_telemetry() -> None:
    """MLflow 3 sends usage events off the machine unless told not to; this process and those it starts don't."""
    import os

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
