"""The schedule of a run's weights (``contract.schedule``): kept in every checkpoint, extended by a copy or a change
of values, and replayed by ``python -m trainables.train --schedule`` with each epoch's own configuration."""

from __future__ import annotations

import json

import pytest
import torch

from contract import metrics as M
from contract import schedule as S
from trainables.config import TrainConfig
from trainables.loop import Trainer
from trainables.train import main as train_main

BASE = ["model.name=t2t_vit_test", "data.batch_size=64", "train.epochs=3", "optim.warmup_epochs=0"]


def _config(*assignments: str) -> dict:
    return TrainConfig.load(None, [*BASE, *assignments]).to_dict()


def _trainer(owner: str, *assignments: str) -> Trainer:
    return Trainer(TrainConfig.from_dict(_config(*assignments)), torch.device("cpu"), owner=owner)


def test_a_copy_starts_a_segment_that_names_the_run_it_copied():
    source = S.start("a", _config("optim.lr=0.001"))
    copied = S.continued(source, 2, "b", "a", _config("optim.lr=0.002"))
    assert [(s["epoch"], s["owner"], s.get("from")) for s in copied] == [(0, "a", None), (2, "b", "a")]
    assert S.config_at(copied, 2)["optim"]["lr"] == 0.001 and S.config_at(copied, 3)["optim"]["lr"] == 0.002
    assert S.continued(copied, 3, "b", "b", copied[-1]["config"]) == copied  # the same run going on as it was
    later = S.continued(copied, 2, "c", "b", _config("optim.lr=0.004"))  # a copy of b's checkpoint at epoch 2
    assert [(s["epoch"], s["owner"]) for s in later] == [(0, "a"), (2, "c")]  # b's own segment trained no epoch
    assert len({s["id"] for s in [*copied, *later]}) == 3


def test_the_artifact_says_what_changed_and_reads_back():
    schedule = S.continued(S.start("a", _config()), 1, "b", "a", _config("optim.lr=0.004", "train.label_smoothing=0"))
    artifact = json.loads(json.dumps(S.to_artifact(schedule, ["optim.lr"])))
    assert artifact["epochs"] == 3
    assert artifact["segments"][1]["changed"] == {"optim.lr": [0.002, 0.004], "train.label_smoothing": [0.1, 0.0]}
    assert [s["values"] for s in artifact["segments"]] == [{"optim.lr": 0.002}, {"optim.lr": 0.004}]
    assert S.from_artifact(artifact) == schedule
    with pytest.raises(ValueError, match="format 1"):
        S.from_artifact({"segments": []})
    late = {**artifact, "segments": artifact["segments"][1:]}  # no segment from epoch 0
    with pytest.raises(ValueError, match=r"start at epochs 0, then later ones in order, got \[1\]"):
        S.from_artifact(late)


@pytest.mark.training
def test_a_member_that_copies_a_checkpoint_carries_its_lineage(tmp_path):
    source = _trainer("a", "optim.lr=0.001")
    source.run_epoch()
    source.save(tmp_path / "a.pt")
    member = _trainer("b", "optim.lr=0.003", "model.drop_path_rate=0.1")
    member.load(tmp_path / "a.pt")
    member.run_epoch()
    member.save(tmp_path / "b.pt")
    again = _trainer("b", "optim.lr=0.003", "model.drop_path_rate=0.1")  # b's process restarts: no new segment
    again.load(tmp_path / "b.pt")

    assert [(s["epoch"], s["owner"], s.get("from")) for s in again.schedule] == [(0, "a", None), (1, "b", "a")]
    assert again.schedule[1]["config"]["model"]["drop_path_rate"] == 0.1


@pytest.mark.training
def test_a_replay_trains_each_epoch_with_the_schedules_values(tmp_path):
    schedule = S.start(None, _config("optim.lr=0.001"))
    schedule = S.continued(schedule, 1, None, None, _config("optim.lr=0.003", "train.label_smoothing=0"))
    schedule = S.continued(schedule, 2, None, None, _config("optim.lr=0.0005", "train.label_smoothing=0"))
    file = tmp_path / "schedule.json"
    file.write_text(json.dumps(S.to_artifact(schedule, ["optim.lr"])))

    assert train_main(["--schedule", str(file), "--output-dir", str(tmp_path / "run"), "--quiet"]) == 0
    state = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    replayed = state["schedule"]
    assert [(s["epoch"], s["config"]["optim"]["lr"]) for s in replayed] == [(0, 0.001), (1, 0.003), (2, 0.0005)]
    assert [r[M.EPOCH] for r in state["history"]] == [1, 2, 3]
    # Each epoch's last step ran at its segment's cosine schedule: the peak learning rate changed at each boundary.
    peaks = [r[M.LR] for r in state["history"]]
    assert peaks[1] > peaks[0] and peaks[2] < peaks[1]


def test_a_bad_schedule_is_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "schedule.json"
    changed = S.continued(S.start(None, _config()), 1, None, None, _config("model.depth=2"))
    bad.write_text(json.dumps(S.to_artifact(changed, [])))
    cases = {
        str(tmp_path / "missing.json"): "no file at",
        str(bad): "changes model.depth, which a run cannot change",
    }
    for path, message in cases.items():
        assert train_main(["--schedule", path, "--output-dir", str(tmp_path / "out")]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    assert train_main(["--schedule", str(bad), "--set", "optim.lr=0.1", "--output-dir", str(tmp_path / "o")]) == 2
    assert "drop --config and --set" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "o").exists()
