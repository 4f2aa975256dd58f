"""The Ray Tune function trainable: the training loop plus restore, per-epoch reports and checkpoints."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from contract import metrics as M
from contract.status import COMPLETED, DIVERGED, RUNNING
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.config import TrainConfig
from trainables.dataset_record import describe
from trainables.loop import Diverged, Trainer
from trainables.mlflow_run import TrialRuns, trial_run


def trial_device(cfg: TrainConfig) -> torch.device:
    """The GPU Ray assigned to this trial (Ray sets CUDA_VISIBLE_DEVICES), else the CPU."""
    if cfg.train.device != "cpu" and ray.get_gpu_ids() and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if cfg.train.device == "cuda":
        raise RuntimeError("train.device=cuda but Ray assigned this trial no GPU; set resources_per_trial.gpu")
    return torch.device("cpu")


def cpu_share() -> int:
    """Whole CPUs Ray assigned to this trial (at least 1): two 1-thread trials beat one 2-thread trial."""
    assigned = ray.get_runtime_context().get_assigned_resources()
    return max(1, int(assigned.get("CPU", 1)))


def train_t2t(config: dict[str, Any], report: Callable[..., None] | None = None, runs: TrialRuns | None = None) -> None:
    """Train ``config`` (a ``TrainConfig.to_dict()``), reporting every epoch with a checkpoint.

    A restarted trial (``FailureConfig`` retry, ``Tuner.restore``) continues from its last checkpoint: the same
    epoch, optimizer, schedule and RNG states.
    ``report`` defaults to ``ray.tune.report``; with ``runs`` (see ``tracked``) the trial's MLflow run gets its data
    sets and system metrics from this process.
    """
    report = report or tune.report
    cfg = TrainConfig.from_dict(config)
    torch.set_num_threads(cpu_share())
    trainer = Trainer(cfg, trial_device(cfg))
    try:
        trial_id = tune.get_context().get_trial_id() if runs else ""
        with trial_run(runs, trial_id, describe(cfg.data, trainer.data, cfg.train.evaluate_test)):
            _train(trainer, report)
    finally:
        device = trainer.device
        del trainer
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def tracked(runs: TrialRuns) -> Callable[[dict[str, Any]], None]:
    """``train_t2t`` whose trials log their data sets and system metrics to their MLflow runs (``runs`` travels
    with the function when Ray pickles it)."""

    def train_t2t_tracked(config: dict[str, Any]) -> None:
        train_t2t(config, runs=runs)

    return train_t2t_tracked


def _train(trainer: Trainer, report: Callable[..., None]) -> None:
    """Epochs from the trial's checkpoint (if any) to the end, each reported with a checkpoint, or its divergence."""
    checkpoint = tune.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as folder:
            trainer.load(Path(folder) / CHECKPOINT_FILE)
    try:
        for row in trainer.epochs():
            status = COMPLETED if trainer.done else RUNNING
            with tempfile.TemporaryDirectory() as folder:
                trainer.save(Path(folder) / CHECKPOINT_FILE)
                report({**row, M.STATUS: status}, checkpoint=tune.Checkpoint.from_directory(folder))
    except Diverged as e:  # the epoch that diverged measured nothing: no val_acc for the scheduler to rank
        final = {M.EPOCH: trainer.epoch + 1, M.TRAIN_LOSS: float("nan"), M.STATUS: DIVERGED, M.REASON: str(e)}
        if trainer.history:
            final[M.BEST_VAL_ACC] = trainer.best[M.VAL_ACC]
        report({**final, M.PARAMS: trainer.cost.params, M.MACS: trainer.cost.macs})
