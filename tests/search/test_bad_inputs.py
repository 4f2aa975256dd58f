"""Every malformed config or flag exits 2 with one line naming the problem, before Ray or MLflow start, and
writes nothing."""

from __future__ import annotations

import pytest

from search.run import main

CASES = {
    "unknown flag": (["--bogus"], "unrecognized arguments: --bogus"),
    "unknown search key": (["--set", "search.num_trial=3"], "search.num_trial: unknown key; did you mean 'num_trials'"),
    "unknown base key": (["--set", "base.optim.lrr=0.1"], "base.optim.lrr: unknown key; did you mean 'lr'"),
    "negative lr": (["--set", "base.optim.lr=-1"], "base.optim.lr: Input should be greater than 0"),
    "unknown model option": (["--set", "base.model.dpth=3"], "unknown model option 'dpth'; did you mean 'depth'"),
    "unknown model": (["--set", "base.model.name=t2t_vit_99"], "unknown model 't2t_vit_99'"),
    "empty range": (["--set", "space.model.depth={type: int, low: 5, high: 2}"], "low must be below high"),
    "unknown distribution": (["--set", "space.model.depth={type: integer, low: 1, high: 3}"], "Input tag 'integer'"),
    "range breaks a rule": (
        ["--set", "space.model.drop_path_rate={type: float, low: 0, high: 2}"],
        "space.model.drop_path_rate=2.0 gives an invalid config",
    ),
    "space section": (["--set", "space.foo.depth=3"], "space key 'foo.depth' must be section.key"),
    "list as space": (["--set", "space.model.depth=[1, 2]"], "a list is not a distribution"),
    "bad condition": (
        ["--set", "space.model.performer_drop={type: float, low: 0, high: 0.2, when: {model.tokens: x}}"],
        "when refers to 'model.tokens'",
    ),
    "scheduler": (["--set", "search.scheduler=hyperband"], "search.scheduler: Input should be 'asha' or 'none'"),
    "zero trials": (["--set", "search.num_trials=0"], "search.num_trials: Input should be greater than or equal to 1"),
    "head_dim": (["--set", "search.head_dim=48"], "search.head_dim=48 does not divide model.embed_dim 128"),
    "heads corner": (
        ["--set", "search.head_dim=null", "--set", "space.model.num_heads={type: choice, values: [3]}"],
        "embed_dim must be divisible by num_heads, got embed_dim=128 num_heads=3",
    ),
    "heads combination": (
        [
            "--set",
            "search.head_dim=null",
            "--set",
            "space.model.num_heads={type: choice, values: [4, 64]}",
            "--set",
            "space.model.embed_dim={type: choice, values: [64, 96]}",
        ],
        "model.embed_dim 96 is not divisible by model.num_heads 64",
    ),
    "data-derived": (["--set", "base.model.num_classes=3"], "model.num_classes is set by the data set"),
    "missing config": (["--config", "nope.yaml"], "config file not found: nope.yaml"),
    "bad name": (["--name", "my search!"], "name must be letters, digits"),
    "resume nothing": (["--name", "never-ran", "--resume"], "nothing to resume: no experiment at"),
    "missing data": (
        ["--set", "base.data.name=cifar10", "--set", "base.data.root=nowhere"],
        "CIFAR-10 not found in nowhere/cifar-10-batches-py: set data.download=true",
    ),
    "unreachable server": (["--set", "tracking_uri=http://127.0.0.1:9"], "cannot reach the MLflow tracking server"),
    "file store": (["--set", "tracking_uri=./mlruns"], "legacy file store"),
    "set syntax": (["--set", "search.num_trials"], "--set expects key=value"),
    "warm start": (
        ["--set", "search.warm_start=sqlite:///nowhere/optuna.db"],
        "search.warm_start: no study file at nowhere/optuna.db",
    ),
    "missing checkpoint": (["--set", "base.model.pretrained=nope.pth"], "checkpoint file not found: nope.pth"),
}


@pytest.mark.parametrize("argv, message", CASES.values(), ids=CASES.keys())
def test_bad_input_exits_2_with_one_line_and_writes_nothing(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    assert message in err, err
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no ray_results


def test_existing_experiment_needs_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ray_results" / "t2t-search").mkdir(parents=True)
    (tmp_path / "ray_results" / "t2t-search" / "tuner.pkl").write_bytes(b"x")
    assert main([]) == 2
    assert "experiment 't2t-search' already exists" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ray_results"]
