from __future__ import annotations

import math

import pytest
import torch

import t2t
from contract import metrics as M
from trainables.config import OptimSection, TrainConfig
from trainables.loop import Diverged, ModelEma, Trainer, lr_at, param_groups

TINY = ["model.name=t2t_vit_test", "data.name=synthetic", "data.synthetic_samples=96", "data.batch_size=16"]


def _trainer(*assignments: str) -> Trainer:
    return Trainer(TrainConfig.load(None, [*TINY, *assignments]), torch.device("cpu"))


@pytest.mark.training
def test_default_digits_config_learns():
    trainer = Trainer(TrainConfig.load(None, ["train.epochs=16"]), torch.device("cpu"))
    rows = list(trainer.epochs())
    assert [r[M.EPOCH] for r in rows] == list(range(1, 17))
    assert trainer.best[M.VAL_ACC] >= 0.85  # 1,079 training images (the default three-way split)
    assert rows[-1][M.TRAIN_LOSS] < rows[0][M.TRAIN_LOSS] / 2
    assert set(rows[0]) >= {
        M.TRAIN_LOSS,
        M.VAL_LOSS,
        M.VAL_ACC,
        M.VAL_ACC5,
        M.LR,
        M.EPOCH_TIME_S,
        M.IMAGES_PER_S,
        M.PARAMS,
        M.MACS,
        M.BEST_VAL_ACC,
    }
    assert rows[0][M.PARAMS] == t2t.complexity(trainer.model).params


# Every source of randomness on: dropout, drop path, augmentation, random erasing, mixup/cutmix, EMA.
STOCHASTIC = [
    "model.drop_rate=0.1",
    "model.drop_path_rate=0.2",
    "model.attn_drop_rate=0.1",
    "data.mixup=0.4",
    "data.cutmix=1.0",
    "data.random_erasing=0.5",
    "train.ema_decay=0.9",
    "optim.clip_grad=1.0",
    "train.epochs=4",
    "optim.warmup_epochs=1",
]


def test_resume_is_exact(tmp_path):
    straight = _trainer(*STOCHASTIC)
    list(straight.epochs())

    first = _trainer(*STOCHASTIC)
    first.run_epoch()
    first.run_epoch()
    first.save(tmp_path / "checkpoint.pt")
    torch.manual_seed(1234)  # a restarted process has another global RNG state: the checkpoint must restore it
    resumed = _trainer(*STOCHASTIC)
    resumed.load(tmp_path / "checkpoint.pt")
    assert resumed.epoch == 2
    list(resumed.epochs())

    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.ema.module.state_dict().items():
        assert torch.equal(value, resumed.ema.module.state_dict()[key]), key
    drop_time = lambda rows: [{k: v for k, v in r.items() if k not in (M.EPOCH_TIME_S, M.IMAGES_PER_S)} for r in rows]  # noqa: E731
    assert drop_time(straight.history) == drop_time(resumed.history)
    assert straight.step == resumed.step == 4 * straight.steps_per_epoch


def test_checkpoint_loads_with_weights_only_and_refuses_another_config(tmp_path):
    trainer = _trainer("train.epochs=1")
    trainer.run_epoch()
    trainer.save(tmp_path / "c.pt")
    state = torch.load(tmp_path / "c.pt", weights_only=True)
    assert state["epoch"] == 1 and state["step"] == trainer.steps_per_epoch
    other = _trainer("train.epochs=2", "optim.lr=0.01")
    with pytest.raises(ValueError, match=r"another configuration \(train.epochs differ\)"):
        other.load(tmp_path / "c.pt")


def test_older_checkpoint_with_extra_identifiers_resumes_exactly(tmp_path):
    straight = _trainer("train.epochs=2")
    list(straight.epochs())

    first = _trainer("train.epochs=2")
    first.run_epoch()
    state = first.state_dict()
    state["extra"] = {"mlflow_run_id": "abc"}  # what older versions kept with the checkpoint: ignored now
    torch.save(state, tmp_path / "old.pt")
    resumed = _trainer("train.epochs=2")
    resumed.load(tmp_path / "old.pt")
    list(resumed.epochs())
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    assert [r[M.VAL_LOSS] for r in straight.history] == [r[M.VAL_LOSS] for r in resumed.history]


def test_nan_loss_raises_diverged_with_reason():
    trainer = _trainer()
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))
    with pytest.raises(Diverged, match=r"loss became nan at epoch 1, step 0"):
        trainer.run_epoch()


def test_nan_between_sparse_checks_is_caught_at_the_epoch_end():
    trainer = _trainer()
    trainer.nan_check_every = 10_000  # as on a GPU, where the loss is read only every CHECK_EVERY steps
    trainer.step = 1  # so no step of this epoch is a checked one
    with torch.no_grad():
        trainer.model.head.weight.fill_(float("nan"))
    with pytest.raises(Diverged, match=r"loss became nan in epoch 1, by step \d+"):
        trainer.run_epoch()
    assert trainer.history == []  # nothing of the diverged epoch is reported


def test_bf16_autocast_on_cpu_trains():
    trainer = _trainer("train.precision=bf16", "train.epochs=1")
    row = trainer.run_epoch()
    assert trainer.bf16 and math.isfinite(row[M.TRAIN_LOSS])


def test_param_groups_follow_the_official_recipe():
    model = t2t.create_model("t2t_vit_test")
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    decay_names = {names[id(p)] for p in decay["params"]}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert "cls_token" in no_decay_names and "blocks.0.attn.proj.bias" in no_decay_names
    assert "blocks.0.norm1.weight" in no_decay_names and "blocks.0.attn.qkv.weight" in decay_names
    assert "pos_embed" not in decay_names | no_decay_names  # frozen
    assert "tokens_to_token.attention1.w" not in decay_names | no_decay_names
    assert len(decay_names | no_decay_names) == sum(p.requires_grad for p in model.parameters())


def test_lr_schedule_warms_up_linearly_then_follows_a_cosine():
    cfg = OptimSection(lr=1e-3, warmup_lr=1e-6, min_lr=1e-5)
    assert lr_at(0, 100, 10, cfg) == pytest.approx(1e-6)
    assert lr_at(5, 100, 10, cfg) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)
    assert lr_at(10, 100, 10, cfg) == pytest.approx(1e-3)
    assert lr_at(55, 100, 10, cfg) == pytest.approx((1e-3 + 1e-5) / 2)
    assert lr_at(100, 100, 10, cfg) == pytest.approx(1e-5)


def test_model_ema_tracks_the_model():
    model = torch.nn.Linear(2, 2)
    ema = ModelEma(model, decay=0.9)
    before = ema.module.weight.clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    ema.update(model, updates=1000)
    torch.testing.assert_close(ema.module.weight, 0.9 * before + 0.1 * model.weight)
    assert not ema.module.weight.requires_grad


def test_model_ema_decay_warms_up():
    ema = ModelEma(torch.nn.Linear(2, 2), decay=0.999)
    assert [ema.decay_at(t) for t in (0, 1, 8, 80)] == pytest.approx([0.1, 2 / 11, 0.5, 0.9])
    assert ema.decay_at(10_000) == 0.999  # (1 + t) / (10 + t) passes 0.999 at t = 8,990
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.add_(1.0)
    before = ema.module.weight.clone()
    ema.update(model, updates=0)  # the first update keeps only 10% of the initial weights
    torch.testing.assert_close(ema.module.weight, 0.1 * before + 0.9 * model.weight)
