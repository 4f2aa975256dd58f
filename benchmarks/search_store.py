"""A synthetic search in a real MLflow store, written as ``search.tracking.tracker`` writes one: an experiment of kind
model-training, one parent run, and N trial runs nested under it, each with the default search's flattened config
as params, per-epoch metrics (step = epoch) in one ``log_batch``, its data sets as inputs and a final status tag.

No training: the numbers are drawn from a seeded generator so the UI has something plausible to show. Used by
``benchmarks/mlflow_ui_scale.py`` to see how MLflow's UI copes with a search of 1,000 trials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
import uuid
from pathlib import Path

from contract import metrics as M
from contract.flat import flatten
from contract.status import COMPLETED, DIVERGED, FAILED, PRUNED, RUN_STATUS, RUNNING
from contract.tracking import (
    EXPERIMENT_KIND_TAG,
    EXPERIMENT_KIND_TRAINING,
    EXPERIMENT_PATH_TAG,
    PARENT_RUN_TAG,
    ROLE_PARENT,
    ROLE_TAG,
    ROLE_TRIAL,
    SEARCH_ID_TAG,
    TRAIN_SPLIT,
    TRIAL_ID_TAG,
    VAL_SPLIT,
)
from search.tracking.writes import EPOCH_METRICS, SIZE_METRICS, dataset_inputs
from trainables.config import TrainConfig, read_yaml
from trainables.dataset_record import SplitRecord

ROOT = Path(__file__).resolve().parents[1]
MAX_EPOCHS = 6
# ASHA at grace 1, reduction 2 over 6 epochs: most trials stop at a low rung.
EPOCH_WEIGHTS = {1: 50, 2: 25, 3: 5, 4: 12, 5: 2, 6: 6}


def _base_params() -> dict:
    """The default search's base config, flattened as a trial's params are."""
    return flatten(TrainConfig(**read_yaml(ROOT / "configs" / "default.yaml")["base"]).to_dict())


def _sampled(rng: random.Random) -> dict:
    """The default space's keys with values drawn the way its ranges allow."""
    tokens = rng.choice(["performer", "transformer"])
    sampled = {
        "model.depth": rng.randint(3, 5), "model.token_dim": rng.choice([16, 32]),
        "model.embed_dim": rng.choice([96, 128]), "model.mlp_ratio": rng.choice([2.0, 3.0]),
        "model.tokens_type": tokens, "model.drop_path_rate": rng.uniform(0, 0.2),
        "model.drop_rate": rng.uniform(0, 0.1), "model.attn_drop_rate": rng.uniform(0, 0.1),
        "optim.lr": 10 ** rng.uniform(-3, -2.4), "optim.weight_decay": 10 ** rng.uniform(-2, -1),
    }  # fmt: skip
    if tokens == "performer":
        sampled["model.performer_kernel_ratio"] = rng.uniform(0.25, 1.0)
    return sampled


def _epoch_rows(rng: random.Random, epochs: int, t0_ms: int) -> list:
    """The Metric records of ``epochs`` epochs, as ``search.tracking.writes.LogEpoch`` logs them."""
    from mlflow.entities import Metric

    ceiling, values, best = rng.uniform(0.6, 0.99), [], 0.0
    for epoch in range(1, epochs + 1):
        acc = ceiling * (1 - 0.6 ** (epoch + rng.random()))
        best = max(best, acc)
        row = {
            M.EPOCH: epoch, M.TRAIN_LOSS: 2.3 * (1 - acc) + 0.1, M.VAL_LOSS: 2.3 * (1 - acc) + 0.15,
            M.VAL_ACC: acc, M.VAL_ACC5: min(1.0, acc + 0.1), M.BEST_VAL_ACC: best,
            M.LR: 2e-3 * (1 - epoch / (MAX_EPOCHS + 1)), M.EPOCH_TIME_S: rng.uniform(8, 12),
            M.IMAGES_PER_S: rng.uniform(300, 450),
        }  # fmt: skip
        stamp = t0_ms + 10_000 * epoch
        values += [Metric(k, float(row[k]), stamp, epoch) for k in EPOCH_METRICS if k in row]
    sizes = {M.PARAMS: rng.randint(200_000, 900_000), M.MACS: rng.randint(5e6, 4e7)}
    return values + [Metric(k, float(sizes[k]), t0_ms, 0) for k in SIZE_METRICS]


def _status(rng: random.Random, epochs: int) -> str:
    if rng.random() < 0.02:
        return rng.choice([DIVERGED, FAILED])
    return COMPLETED if epochs == MAX_EPOCHS else PRUNED


def _datasets(client, run_id: str) -> None:
    """The data set inputs the driver logs from a trial's first result (``search.tracking.writes.LogInputs``)."""
    splits = {TRAIN_SPLIT: 1078, VAL_SPLIT: 359}  # the digits' split at val 0.2, test 0.2
    digest = {s: hashlib.sha256(s.encode()).hexdigest()[:12] for s in splits}
    records = [SplitRecord("digits", s, digest[s], n, 10, (1, 32, 32), "sklearn") for s, n in splits.items()]
    client.log_inputs(run_id, datasets=dataset_inputs([dataclasses.asdict(r) for r in records]))


def _trial(client, experiment_id: str, parent_id: str, rng: random.Random, base: dict) -> None:
    """One trial's run, as ``search.tracking.run_index.RunIndex.child_run`` opens it and ``search.tracking.writes``
    fills and ends it."""
    from mlflow.entities import Param, RunTag

    trial_id = uuid.UUID(int=rng.getrandbits(128)).hex[:8]
    tags = {ROLE_TAG: ROLE_TRIAL, PARENT_RUN_TAG: parent_id, TRIAL_ID_TAG: trial_id, M.STATUS: RUNNING}
    run_id = client.create_run(experiment_id, run_name=f"{ROLE_TRIAL}-{trial_id}", tags=tags).info.run_id
    epochs = rng.choices(list(EPOCH_WEIGHTS), weights=list(EPOCH_WEIGHTS.values()))[0]
    status = _status(rng, epochs)
    params = [Param(k, str(v)[:6000]) for k, v in {**base, **_sampled(rng)}.items()]
    metrics = _epoch_rows(rng, epochs, int(time.time() * 1000))
    client.log_batch(run_id, metrics=metrics, params=params, tags=[RunTag(M.STATUS, status)])
    _datasets(client, run_id)
    client.set_terminated(run_id, RUN_STATUS[status])


def write_search(store: Path, experiment: str, trials: int, seed: int = 0) -> str:
    """A search of ``trials`` trial runs in the sqlite store ``store`` (created if missing); its experiment id."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    tracking_uri = f"sqlite:///{store}"
    client, rng, base = MlflowClient(tracking_uri), random.Random(seed), _base_params()
    experiment_id = client.create_experiment(experiment, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND_TRAINING})
    search_id = uuid.UUID(int=rng.getrandbits(128)).hex
    parent_tags = {SEARCH_ID_TAG: search_id, ROLE_TAG: ROLE_PARENT, EXPERIMENT_PATH_TAG: f"ray_results/{experiment}"}
    parent = client.create_run(experiment_id, run_name=f"{experiment}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags=parent_tags).info.run_id  # fmt: skip
    client.log_batch(parent, params=[Param(k, str(v)) for k, v in base.items()])
    for _ in range(trials):
        _trial(client, experiment_id, parent, rng, base)
    now = int(time.time() * 1000)
    summary = {M.BEST_VAL_ACC: 0.97, "num_trials": trials}
    client.log_batch(parent, metrics=[Metric(k, float(v), now, 0) for k, v in summary.items()])
    client.set_terminated(parent, "FINISHED")
    return experiment_id
