"""train.evaluate_test: the test split is measured once, after the last epoch, and never otherwise."""

from __future__ import annotations

import json
import logging

import torch

from contract import metrics as M
from contract.hits import decode as decode_hits
from contract.hits import encode as encode_hits
from contract.tracking import TEST_SPLIT, TRAIN_SPLIT, VAL_SPLIT
from trainables.config import TrainConfig
from trainables.dataset_record import describe
from trainables.loop import Trainer, evaluate

TINY = [
    "model.name=t2t_vit_test",
    "data.name=synthetic",
    "data.synthetic_samples=120",
    "data.synthetic_classes=5",
    "data.batch_size=16",
    "train.epochs=2",
]
TEST_KEYS = {M.TEST_ACC, M.TEST_LOSS, M.TEST_ACC5}


def _trainer(*assignments: str) -> Trainer:
    return Trainer(TrainConfig.load(None, [*TINY, *assignments]), torch.device("cpu"))


def test_without_evaluate_test_no_row_holds_a_test_number():
    trainer = _trainer()
    rows = list(trainer.epochs())
    assert all(not TEST_KEYS & set(row) for row in rows)
    assert not TEST_KEYS & set(trainer.summary())
    assert [r.split for r in describe(trainer.cfg.data, trainer.data)] == [TRAIN_SPLIT, VAL_SPLIT]


def test_with_evaluate_test_only_the_last_row_has_the_test_numbers_of_the_evaluated_weights():
    trainer = _trainer("train.evaluate_test=true", "train.ema_decay=0.9")
    rows = list(trainer.epochs())
    assert not TEST_KEYS & set(rows[0])
    assert set(rows[-1]) >= TEST_KEYS
    again = evaluate(trainer.ema.module, trainer.data.test, False, trainer.data.num_classes, TEST_SPLIT)
    assert again == {k: rows[-1][k] for k in TEST_KEYS}
    raw = evaluate(trainer.model, trainer.data.test, False, trainer.data.num_classes, TEST_SPLIT)
    assert raw[M.TEST_LOSS] != rows[-1][M.TEST_LOSS]  # the EMA's numbers, not the raw weights'
    records = describe(trainer.cfg.data, trainer.data, trainer.cfg.train.evaluate_test)
    assert [r.split for r in records] == [TRAIN_SPLIT, VAL_SPLIT, TEST_SPLIT]
    assert records[2].rows == len(trainer.data.test.labels) and records[2].digest != records[1].digest


def test_top5_is_left_out_below_five_classes():
    trainer = _trainer("train.evaluate_test=true", "data.synthetic_classes=3", "train.epochs=1")
    (row,) = trainer.epochs()
    assert M.TEST_ACC in row and M.TEST_ACC5 not in row


def test_the_cli_writes_the_test_numbers(tmp_path, caplog):
    from trainables.train import main

    caplog.set_level(logging.INFO, logger="trainables.train")
    args = [f"--set={a}" for a in [*TINY, "train.evaluate_test=true"]]
    assert main([*args, "--output-dir", str(tmp_path), "--quiet"]) == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert set(metrics) >= TEST_KEYS
    assert f"test_acc {metrics[M.TEST_ACC]:.4f}" in caplog.text


def test_the_last_row_keeps_each_test_images_hit():
    trainer = _trainer("train.evaluate_test=true")
    rows = list(trainer.epochs())
    assert all(M.FINAL_HITS not in row for row in rows[:-1])
    images, hits = decode_hits(rows[-1][M.FINAL_HITS])
    assert len(hits) == len(trainer.data.test.labels) and sum(hits) / len(hits) == rows[-1][M.TEST_ACC]
    assert images == decode_hits(encode_hits([], trainer.data.test.labels.tolist()))[0]  # the test split's images


def test_without_a_test_split_of_its_own_the_val_numbers_are_the_measurement():
    """An image folder without test/ (Data.test is Data.val): no number is named test; the hits are val's."""
    trainer = _trainer("train.evaluate_test=true")
    trainer.data.test = trainer.data.val
    rows = list(trainer.epochs())
    assert not trainer.data.has_test_split and all(not TEST_KEYS & set(row) for row in rows)
    images, hits = decode_hits(rows[-1][M.FINAL_HITS])
    assert len(hits) == len(trainer.data.val.labels) and sum(hits) / len(hits) == rows[-1][M.VAL_ACC]
    assert images == decode_hits(encode_hits([], trainer.data.val.labels.tolist()))[0]  # val's images
    records = describe(trainer.cfg.data, trainer.data, trainer.cfg.train.evaluate_test)
    assert [r.split for r in records] == [TRAIN_SPLIT, VAL_SPLIT]  # no test input recorded
