"""A run continues from its checkpoint with other values of the keys that population-based training changes
(``trainables.config.MUTABLE``): the weights, the optimizer's moments, the EMA, the step and the data order continue,
the new values apply from the next step, and the loss curve goes on where it was."""

from __future__ import annotations

import pytest
import torch

from contract import metrics as M
from trainables.config import TrainConfig
from trainables.loop import Trainer, evaluate, lr_at

# Digits (learnable: the loss falls within 2 epochs of 67 steps) with the smallest model: seconds an epoch.
BASE = ["model.name=t2t_vit_test", "data.batch_size=16", "train.epochs=3", "optim.warmup_epochs=0"]
NEW = ["optim.lr=0.0005", "optim.weight_decay=0.01", "model.drop_path_rate=0.1", "train.label_smoothing=0.0",
       "train.ema_decay=0.8", "data.mixup=0.2"]  # fmt: skip


def _trainer(*assignments: str) -> Trainer:
    return Trainer(TrainConfig.load(None, [*BASE, *assignments]), torch.device("cpu"))


@pytest.mark.training
def test_new_values_apply_from_the_next_step_and_the_run_continues(tmp_path):
    first = _trainer("train.ema_decay=0.9")
    first.run_epoch()
    first.run_epoch()
    first.save(tmp_path / "checkpoint.pt")
    changed = _trainer(*NEW)
    changed.load(tmp_path / "checkpoint.pt")

    assert (changed.epoch, changed.step, changed.history) == (first.epoch, first.step, first.history)
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, changed.model.state_dict()[key]), key
    for key, value in first.ema.module.state_dict().items():
        assert torch.equal(value, changed.ema.module.state_dict()[key]), key
    saved, loaded = first.optimizer.state_dict()["state"], changed.optimizer.state_dict()["state"]
    assert all(torch.equal(saved[i]["exp_avg"], loaded[i]["exp_avg"]) for i in saved)  # the moments continue
    assert [g["weight_decay"] for g in changed.optimizer.param_groups] == [0.01, 0.0]
    assert changed.ema.decay == 0.8 and changed.model.blocks[-1].drop_path.p > 0

    row = changed.run_epoch()
    last = lr_at(changed.step - 1, changed.total_steps, changed.warmup_steps, changed.cfg.optim)
    assert changed.optimizer.param_groups[0]["lr"] == pytest.approx(last)  # the new schedule, at the old step
    assert row[M.EPOCH] == 3 and len(changed.history) == 3 and changed.done

    # Continuous: val_loss (one definition, whatever the smoothing or mixup) goes on from where the run was, far
    # from where the untrained model started.
    start = evaluate(_trainer(*NEW).eval_model, first.data.val, False, first.data.num_classes)[M.VAL_LOSS]
    before = first.history[-1][M.VAL_LOSS]
    assert abs(row[M.VAL_LOSS] - before) < abs(start - before) / 3, (start, before, row[M.VAL_LOSS])


def test_what_a_run_cannot_change_is_refused_naming_it(tmp_path):
    first = _trainer()
    first.run_epoch()
    first.save(tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match=r"\(model.depth differ\); resume with .* other values of optim.lr, "):
        _trainer("model.depth=3", "optim.lr=0.001").load(tmp_path / "checkpoint.pt")
    with pytest.raises(ValueError, match="a run may change the EMA's decay, not switch the EMA on or off"):
        _trainer("train.ema_decay=0.9").load(tmp_path / "checkpoint.pt")


def test_a_finished_run_is_not_resumed_with_values_nothing_would_train_with(tmp_path, capsys):
    """Its metrics.json would record values no epoch trained with: one line, exit 2, nothing written."""
    from trainables.train import main

    run = ["--output-dir", str(tmp_path), "--quiet", "--set=model.name=t2t_vit_test", "--set=data.name=synthetic",
           "--set=data.synthetic_samples=64", "--set=data.batch_size=16", "--set=train.epochs=1"]  # fmt: skip
    assert main(run) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    capsys.readouterr()
    assert main([*run, "--resume", "--set=optim.lr=0.0001"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("completed its 1 epochs: nothing is left to train with other values of optim.lr; start a new "
                        "--output-dir") and "\n" not in err  # fmt: skip
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
