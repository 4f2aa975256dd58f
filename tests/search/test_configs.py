from __future__ import annotations

from pathlib import Path

import pytest

from search.config import SearchConfig

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("*.yaml"))


def test_default_yaml_is_the_embedded_default():
    assert SearchConfig.load(CONFIGS[0].parent / "default.yaml") == SearchConfig()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    cfg = SearchConfig.load(path)
    assert cfg.search_space.params  # each searches something
    assert cfg.name == path.stem.replace("_", "-") or path.stem == "default"
