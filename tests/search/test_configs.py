from __future__ import annotations

from pathlib import Path

import pytest

from search.experiment.search_config import SearchConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_default_yaml_is_the_embedded_default():
    assert SearchConfig.load(CONFIGS[0].parent / "default.yaml") == SearchConfig()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = SearchConfig.load(path)
    assert cfg.search_space.params  # each searches something
    assert cfg.name == path.stem.replace("_", "-") or path.stem == "default"


def test_asha_runs_the_longest_trial_of_the_space_to_its_end():
    from search.plugins.scheduler import build_scheduler

    cfg = SearchConfig.load(None, ["space.train.epochs={type: choice, values: [4, 12]}", "base.train.epochs=6"])
    assert (
        cfg.max_epochs == 12 and build_scheduler("asha", cfg.max_epochs, 1, 2)._max_t == 12
    )  # a 12-epoch trial is not cut at 6
    assert SearchConfig.load(None, ["base.train.epochs=6"]).max_epochs == 6
