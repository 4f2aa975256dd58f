from __future__ import annotations

import json

import torch

import t2t
from contract import metrics as M
from contract.status import COMPLETED, DIVERGED
from trainables.train import main

TINY = [
    "--set",
    "model.name=t2t_vit_test",
    "--set",
    "data.name=synthetic",
    "--set",
    "data.synthetic_samples=64",
    "--set",
    "data.batch_size=16",
    "--quiet",
]


def test_trains_writes_metrics_and_resumes(tmp_path):
    out = tmp_path / "run"
    assert main([*TINY, "--set", "train.epochs=2", "--output-dir", str(out)]) == 0
    result = json.loads((out / "metrics.json").read_text())
    assert result[M.STATUS] == COMPLETED
    assert [row[M.EPOCH] for row in result["history"]] == [1, 2]
    assert result[M.BEST_VAL_ACC] == max(row[M.VAL_ACC] for row in result["history"])
    model = t2t.create_model("t2t_vit_test", num_classes=10)
    t2t.load_pretrained(model, out / "best_model.pt")

    assert main([*TINY, "--set", "train.epochs=2", "--output-dir", str(out)]) == 2  # would overwrite: refused
    assert main([*TINY, "--set", "train.epochs=2", "--output-dir", str(out), "--resume"]) == 0
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 2  # nothing repeated


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    cases = [
        ["--set", "optim.lrr=1"],
        ["--set", "data.name=imagenet"],
        ["--set", "data.name=imagefolder", "--set", f"data.root={tmp_path}/nope"],
        ["--set", "data.name=cifar10", "--set", f"data.root={tmp_path}/nope"],
        ["--config", str(tmp_path / "missing.yaml")],
        ["--resume"],
    ]
    for case in cases:
        assert main([*case, "--output-dir", str(out), "--quiet"]) == 2, case
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert not out.exists()


def test_divergence_is_a_status_not_a_crash(tmp_path, capsys):
    broken = t2t.create_model("t2t_vit_test", num_classes=10).state_dict()
    broken["head.weight"].fill_(float("nan"))
    torch.save(broken, tmp_path / "nan.pt")
    out = tmp_path / "run"
    assert main([*TINY, "--set", f"model.pretrained={tmp_path / 'nan.pt'}", "--output-dir", str(out)]) == 1
    assert "the run diverged: loss became nan" in capsys.readouterr().err
    result = json.loads((out / "metrics.json").read_text())
    assert result[M.STATUS] == DIVERGED and "loss became nan" in result[M.REASON]
