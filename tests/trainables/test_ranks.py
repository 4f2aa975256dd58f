"""One run on two processes (DDP over gloo, trainables.ranks) trains and measures as one process does: the same
global batches, gradients averaged over the ranks, every number a sum over both ranks' shares."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest
import torch

from contract import metrics as M
from contract.hits import decode as decode_hits
from tests.processes import free_port
from trainables.config import TrainConfig
from trainables.loop import Trainer

# Nothing random but the data order (the same on every rank): no augmentation, dropout, drop path or mixup. 150
# synthetic images, split stratified: a training batch of 16 is 8 a rank; val and test in batches of 7 are 4 and 3 a
# rank, and the last, short batch of each is shared unevenly.
DETERMINISTIC = [
    "model.name=t2t_vit_test", "data.name=synthetic", "data.synthetic_samples=150", "data.synthetic_classes=5",
    "data.batch_size=16", "data.eval_batch_size=7", "data.augment=false", "train.epochs=3",
    "optim.warmup_epochs=0", "optim.lr=3e-3", "train.evaluate_test=true",
]  # fmt: skip
RANKS = 2


def _rows(trainer: Trainer) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in (M.EPOCH_TIME_S, M.IMAGES_PER_S)} for row in trainer.epochs()]


def _rank(rank: int, address: str, config: list[str], out: str) -> None:
    from trainables.ranks import join, leave

    torch.set_num_threads(1)
    group = join(address, rank, RANKS, torch.device("cpu"))
    try:
        trainer = Trainer(TrainConfig.load(None, config), torch.device("cpu"), group=group)
        rows = _rows(trainer)
        leave(together=True)
        order = trainer.generator.get_state().tolist()  # the next epoch's batch order: the same on every rank
        shares = {
            "train": sorted({len(y) for _, y in trainer.data.train}),
            "val": [len(y) for _, y in trainer.data.val],
        }
        Path(out).write_text(
            json.dumps({"rows": rows, "weights": trainer.model.head.weight.tolist(), "order": order, "shares": shares})
        )
    finally:
        leave()


def _two_ranks(tmp_path: Path, config: list[str]) -> list[dict]:
    """What each of two processes training ``config`` as one run wrote (``_rank``); each stopped by PID after."""
    address = f"127.0.0.1:{free_port()}"
    spawn = multiprocessing.get_context("spawn")
    outs = [tmp_path / f"rank{r}.json" for r in range(RANKS)]
    procs = [spawn.Process(target=_rank, args=(r, address, config, str(outs[r]))) for r in range(RANKS)]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=240)
        assert [p.exitcode for p in procs] == [0] * RANKS
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
    return [json.loads(o.read_text()) for o in outs]


@pytest.mark.processes
def test_two_ranks_train_and_measure_as_one_process(tmp_path):
    torch.set_num_threads(1)
    one = Trainer(TrainConfig.load(None, DETERMINISTIC), torch.device("cpu"))
    expected = _rows(one)
    ranks = _two_ranks(tmp_path, DETERMINISTIC)

    # each rank trained on half of every batch and measured its share of each: 31 val images in batches of 7
    assert [r.pop("shares") for r in ranks] == [
        {"train": [8], "val": [4, 4, 4, 4, 2]},
        {"train": [8], "val": [3, 3, 3, 3, 1]},
    ]
    assert ranks[0] == ranks[1]  # every rank holds the same weights and reports the same numbers
    rows = ranks[0]["rows"]
    assert [r[M.EPOCH] for r in rows] == [1, 2, 3]
    for got, want in zip(rows, expected, strict=True):
        # The same global batches and the mean gradient over each: only the order of float sums differs (the
        # gradient's halves averaged by DDP), which moves the losses in their 5th digit and no image's prediction.
        assert set(got) == set(want)
        losses = {M.TRAIN_LOSS, M.VAL_LOSS, M.TEST_LOSS, M.LR} & set(want)
        for key in losses:
            assert got[key] == pytest.approx(want[key], rel=1e-4), key
        for key in set(want) - losses - {M.FINAL_HITS}:  # the accuracies (counts of images), sizes, the epoch
            assert got[key] == want[key], key
    # each test image's hit, put back in the split's order from both ranks' shares
    assert decode_hits(rows[-1][M.FINAL_HITS]) == decode_hits(expected[-1][M.FINAL_HITS])
    assert torch.tensor(ranks[0]["weights"]) == pytest.approx(one.model.head.weight.detach(), abs=1e-4)


@pytest.mark.processes
def test_with_every_random_draw_on_the_ranks_stay_one_run(tmp_path):
    """Augmentation, dropout, drop path, mixup and cutmix on, and one short training batch of 89 images, 45 and 44 a
    rank: each rank draws its own dropout and mixup, yet every rank's data generator stays in step with the others'
    (the next epoch's order is drawn from it), and the ranks hold the same weights and report the same numbers."""
    config = [*DETERMINISTIC, "data.synthetic_samples=151", "data.batch_size=128", "data.augment=true",
              "data.random_erasing=0.5", "data.mixup=0.4", "data.cutmix=1.0", "model.drop_rate=0.1",
              "model.drop_path_rate=0.2", "train.epochs=2"]  # fmt: skip
    ranks = _two_ranks(tmp_path, config)
    assert [r.pop("shares")["train"] for r in ranks] == [[45], [44]]
    assert ranks[0] == ranks[1] and [r[M.EPOCH] for r in ranks[0]["rows"]] == [1, 2]


def test_a_batch_that_does_not_split_evenly_is_refused():
    from trainables.ranks import Group

    cfg = TrainConfig.load(None, [*DETERMINISTIC, "data.batch_size=15"])
    with pytest.raises(ValueError, match=r"data.batch_size=15 is not a multiple of the 2 workers"):
        Trainer(cfg, torch.device("cpu"), group=Group(0, 2))
