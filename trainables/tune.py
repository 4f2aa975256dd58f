"""The Ray Tune function trainable: the training loop plus restore, per-epoch reports and checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ray import tune

from contract import metrics as M
from contract.schedule import Schedule
from contract.status import COMPLETED, DIVERGED, RUNNING
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.config import TrainConfig
from trainables.dataset_record import SplitRecord, describe
from trainables.loop import Diverged, Trainer, following
from trainables.telemetry import Telemetry, nvml_reader, visible_gpus
from trainables.trial_ranks import TrialRanks, cpu_share, trial_device


def train_t2t(
    config: dict[str, Any], report: Callable[..., None] | None = None, follow: Schedule | None = None
) -> None:
    """Train ``config`` (a ``TrainConfig.to_dict()``), reporting every epoch with a checkpoint; with ``follow`` (a
    ``contract.schedule``), each epoch with the configuration the schedule gives it (a replay).

    A restarted trial (``FailureConfig`` retry, ``Tuner.restore``) continues from its last checkpoint: the same
    epoch, optimizer, schedule and RNG states. Every report carries this process's telemetry since the last one
    (``trainables.telemetry``), its first the data sets (``M.DATASETS``): the driver logs both to the trial's run.
    ``report`` defaults to ``ray.tune.report``.
    """
    report = report or tune.report
    cfg = TrainConfig.from_dict(follow[0]["config"] if follow else config)
    torch.set_num_threads(cpu_share())
    device = trial_device(cfg)
    with TrialRanks(cfg.to_dict(), trial_id(), device) as ranks:
        if follow and ranks.group.many:
            raise ValueError("a schedule's replay (a population's member) trains on one process, not several")
        trainer = Trainer(cfg, device, owner=trial_id(), group=ranks.group)
        try:
            records = describe(cfg.data, trainer.data, cfg.train.evaluate_test)
            with Telemetry(nvml_reader(visible_gpus()) if device.type == "cuda" else None) as telemetry:
                _train(trainer, TelemetryReport(report, telemetry, records), follow, ranks)
        finally:
            del trainer
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()


def trial_id() -> str | None:
    """The Tune trial this process trains (None outside Tune)."""
    try:
        return tune.get_context().get_trial_id()
    except Exception:  # not in a Tune session
        return None


def train_t2t_tracked(config: dict[str, Any], follow: Schedule | None = None) -> None:
    """The search's trainable: ``train_t2t``, under the name Tune registers it by (``Tuner.restore`` takes only the
    name a search started with)."""
    train_t2t(config, follow=follow)


class TelemetryReport:
    """``report`` with the process's telemetry since the last report, and the data sets on its first."""

    def __init__(self, report: Callable[..., None], telemetry: Telemetry, records: list[SplitRecord]) -> None:
        self.report, self.telemetry = report, telemetry
        self.datasets: str | None = json.dumps([dataclasses.asdict(r) for r in records])

    def __call__(self, row: dict[str, Any], **kwargs: Any) -> None:
        extra = {M.DATASETS: self.datasets} if self.datasets else {}
        self.datasets = None
        self.report({**row, **self.telemetry.take(), **extra}, **kwargs)


def _train(trainer: Trainer, report: Callable[..., None], follow: Schedule | None, ranks: TrialRanks) -> None:
    """Epochs from the trial's checkpoint (if any) to the end, each reported with a checkpoint, or its divergence;
    the trial's other ranks train alongside from the same state. The weights' schedule goes with the first report
    and with each one after it changed (``M.SCHEDULE``)."""
    checkpoint, state = tune.get_checkpoint(), None
    if checkpoint:
        with checkpoint.as_directory() as folder:
            state = trainer.load(Path(folder) / CHECKPOINT_FILE)
    if ranks.workers:
        ranks.start(state)
    del state  # the model, the optimizer's moments and the EMA: not kept for the whole trial
    sent = None
    try:
        while not trainer.done:
            trainer = following(trainer, follow)
            row = trainer.run_epoch()
            if trainer.schedule != sent:
                row, sent = {**row, M.SCHEDULE: json.dumps(trainer.schedule)}, copy.deepcopy(trainer.schedule)
            status = COMPLETED if trainer.done else RUNNING
            with tempfile.TemporaryDirectory() as folder:
                trainer.save(Path(folder) / CHECKPOINT_FILE)
                report({**row, M.STATUS: status}, checkpoint=tune.Checkpoint.from_directory(folder))
    except Diverged as e:  # the epoch that diverged measured nothing: no val_acc for the scheduler to rank
        final = {M.EPOCH: trainer.epoch + 1, M.TRAIN_LOSS: float("nan"), M.STATUS: DIVERGED, M.REASON: str(e)}
        if trainer.history:
            final[M.BEST_VAL_ACC] = trainer.best[M.VAL_ACC]
        if trainer.schedule != sent:  # diverged in its first epoch after a copy: the epoch is of the new segment
            final[M.SCHEDULE] = json.dumps(trainer.schedule)
        report({**final, M.PARAMS: trainer.cost.params, M.MACS: trainer.cost.macs})
    ranks.finish()
