"""--resume runs the config a search was started with; the credentials of URIs never reach params or logs."""

from __future__ import annotations

import json

import pytest

from contract.files import SEARCH_CONFIG
from contract.redact import redact
from search.experiment.search_config import SearchConfig
from search.run import load_config, parse_args
from trainables.config import ConfigError


def _saved(tmp_path, *sets: str) -> str:
    cfg = SearchConfig.load(None, ["base.model.name=t2t_vit_test", *sets], name="old", storage_path=str(tmp_path))
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / SEARCH_CONFIG).write_text(json.dumps(cfg.to_dict()))
    return str(tmp_path)


def test_resume_runs_the_saved_config_not_the_default(tmp_path):
    storage = _saved(tmp_path, "search.num_trials=3", "base.train.epochs=4")
    cfg = load_config(parse_args(["--name", "old", "--resume", "--storage-path", storage]))
    assert cfg.search.num_trials == 3 and cfg.base.train.epochs == 4 and cfg.base.model.name == "t2t_vit_test"


def test_resume_with_the_same_flags_is_accepted_and_with_other_ones_refused(tmp_path):
    storage = _saved(tmp_path, "search.num_trials=3")
    same = ["--name", "old", "--resume", "--storage-path", storage, "--set", "base.model.name=t2t_vit_test"]
    assert load_config(parse_args([*same, "--set", "search.num_trials=3"])).search.num_trials == 3
    with pytest.raises(ConfigError, match=r"search\.num_trials was 3 there but is 4 here"):
        load_config(parse_args([*same, "--set", "search.num_trials=4"]))


@pytest.mark.parametrize(
    "uri, shown",
    [
        ("postgresql://bob:s3cret@db:5432/mlflow", "postgresql://bob:***@db:5432/mlflow"),
        ("https://admin:p%40ss@mlflow.example:5000", "https://admin:***@mlflow.example:5000"),
        (
            "s3://bucket/t2t?access_key=AK&secret_key=SK&region=eu",
            "s3://bucket/t2t?access_key=***&secret_key=***&region=eu",
        ),
        ("sqlite:///mlflow.db", "sqlite:///mlflow.db"),
        ("cannot reach http://u:pw@host:1 (ConnectionError)", "cannot reach http://u:***@host:1 (ConnectionError)"),
    ],
)
def test_redact_masks_credentials(uri, shown):
    assert redact(uri) == shown
