"""The weights a run saves are the weights it evaluated (the EMA's when on), and they load back to its numbers."""

from __future__ import annotations

import json

import pytest
import torch

import t2t
from contract import metrics as M
from trainables.checkpoint import CHECKPOINT_FILE
from trainables.config import TrainConfig
from trainables.data import build_data
from trainables.loop import evaluate
from trainables.train import main

TINY = ["model.name=t2t_vit_test", "data.name=synthetic", "data.synthetic_samples=96", "data.batch_size=16"]


def _val(model: torch.nn.Module, cfg: TrainConfig) -> tuple[float, float]:
    """(val_acc, val_loss) of ``model``: the loss tells weights apart where a few images' accuracy may not."""
    data = build_data(cfg.data, torch.device("cpu"), torch.Generator())
    result = evaluate(model, data.val, False, data.num_classes)
    return result[M.VAL_ACC], result[M.VAL_LOSS]


def _fresh(cfg: TrainConfig) -> torch.nn.Module:
    return t2t.T2TViT(cfg.model.build_config(cfg.data.img_size, 3, cfg.data.synthetic_classes))


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ema_run")
    sets = [*TINY, "train.epochs=3", "train.ema_decay=0.99", "optim.lr=3e-3"]
    assert main([*(f"--set={s}" for s in sets), "--output-dir", str(out), "--quiet"]) == 0
    return out, TrainConfig.load(None, sets), json.loads((out / "metrics.json").read_text())


def test_best_model_holds_the_ema_weights_and_loads_back_to_the_best_val_acc(ema_run):
    out, cfg, metrics = ema_run
    model = _fresh(cfg)
    t2t.load_pretrained(model, out / "best_model.pt")
    acc, loss = _val(model, cfg)
    assert acc == metrics[M.BEST_VAL_ACC] and loss == pytest.approx(metrics["best_" + M.VAL_LOSS], rel=1e-6)


def test_load_pretrained_reads_our_checkpoint_prefering_the_ema(ema_run):
    out, cfg, metrics = ema_run
    state = torch.load(out / CHECKPOINT_FILE, weights_only=True)
    ema, raw = _fresh(cfg), _fresh(cfg)
    t2t.load_pretrained(ema, out / CHECKPOINT_FILE)
    t2t.load_pretrained(raw, out / CHECKPOINT_FILE, use_ema=False)
    for key, value in ema.state_dict().items():
        torch.testing.assert_close(value, state["ema"][key], rtol=0, atol=0)
    for key, value in raw.state_dict().items():
        torch.testing.assert_close(value, state["model"][key], rtol=0, atol=0)
    assert not torch.equal(ema.head.weight, raw.head.weight)
    last = metrics["history"][-1]  # checkpoint.pt is the last epoch's
    assert _val(ema, cfg) == pytest.approx((last[M.VAL_ACC], last[M.VAL_LOSS]), rel=1e-6)


def test_without_ema_load_pretrained_reads_our_checkpoints_model(tmp_path):
    out = tmp_path / "run"
    sets = [*TINY, "train.epochs=1"]
    assert main([*(f"--set={s}" for s in sets), "--output-dir", str(out), "--quiet"]) == 0
    cfg = TrainConfig.load(None, sets)
    model = _fresh(cfg)
    t2t.load_pretrained(model, out / CHECKPOINT_FILE)
    metrics = json.loads((out / "metrics.json").read_text())
    assert _val(model, cfg) == pytest.approx((metrics[M.VAL_ACC], metrics[M.VAL_LOSS]), rel=1e-6)
