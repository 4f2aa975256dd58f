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


def test_no_key_shadows_an_attribute_of_its_class():
    """Pydantic warns on every import (a line before any error a user is shown) where a key is named like an
    attribute its class inherits (``register``: ABCMeta's)."""
    from pydantic import BaseModel

    from search.experiment import search_config
    from trainables import config

    sections = [c for m in (search_config, config) for c in vars(m).values() if isinstance(c, type)]
    sections = [c for c in sections if issubclass(c, BaseModel) and c is not BaseModel]
    assert len(sections) >= 8
    for section in sections:
        shadowed = [k for k in section.model_fields if any(hasattr(base, k) for base in section.__mro__[1:])]
        assert not shadowed, (section.__name__, shadowed)
