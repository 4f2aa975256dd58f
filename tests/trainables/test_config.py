from __future__ import annotations

import pytest

from trainables.config import ConfigError, TrainConfig


@pytest.mark.parametrize(
    "assignments, message",
    [
        (["optim.lrr=0.1"], "optim.lrr: unknown key; did you mean 'lr'?"),
        (["optim.lr=-1"], "optim.lr: Input should be greater than 0 (got -1)"),
        (["model.dpth=3"], "unknown model option 'dpth'; did you mean 'depth'?"),
        (["model.name=t2t_vit_15"], "unknown model 't2t_vit_15'"),
        (["model.embed_dim=100", "model.num_heads=3"], "embed_dim must be divisible by num_heads"),
        (["model.num_classes=3"], "model.num_classes is set by the data set"),
        (["data.name=mnist"], "data.name: Input should be 'digits', 'cifar10'"),
        (["train.epochs=abc"], "train.epochs: Input should be a valid integer"),
        (["optim.min_lr=0.5", "optim.lr=0.1"], "optim.min_lr must not exceed optim.lr"),
        (["trian.epochs=3"], "trian: unknown key; did you mean 'train'?"),
        (["epochs"], "--set expects key=value"),
    ],
)
def test_bad_config_is_one_clear_line(assignments, message):
    with pytest.raises(ConfigError) as e:
        TrainConfig.load(None, assignments)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_round_trip_through_a_plain_dict_and_yaml(tmp_path):
    cfg = TrainConfig.load(None, ["model.depth=3", "optim.lr=1e-3", "data.mixup=0.2"])
    assert cfg.model.overrides == {"depth": 3}
    assert cfg.optim.lr == 0.001
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  depth: 3\noptim:\n  lr: 1.0e-3\ndata:\n  mixup: 0.2\n")
    assert TrainConfig.load(path) == cfg


def test_bad_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        TrainConfig.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        TrainConfig.load(bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping of sections"):
        TrainConfig.load(bad)
