"""Ray Tune's real controller and search generator, made without starting Ray (as Ray's own controller tests do,
but with no cluster at all): the tests of each runtime patch run in the fast tier."""

from __future__ import annotations

from pathlib import Path

import pytest
from ray.train._internal.storage import StorageContext
from ray.tune.registry import register_trainable

TRAINABLE = "t2t_patch_test_noop"


def storage(folder: Path, name: str = "exp") -> StorageContext:
    """Tune's storage of experiment ``name`` under ``folder``; its staging folder (Ray's session folder once Ray
    runs) in ``folder`` too."""
    context = StorageContext(storage_path=str(folder), experiment_dir_name=name)
    context._get_session_path = lambda: str(folder / "session")  # Ray's session folder, read only when Ray runs
    return context


@pytest.fixture
def controller(tmp_path, monkeypatch):
    """A real ``TuneController`` of an experiment in ``tmp_path/new``, with no trial yet."""
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.search import BasicVariantGenerator

    monkeypatch.setenv("TUNE_MAX_PENDING_TRIALS_PG", "1")  # else the controller asks the (absent) cluster
    register_trainable(TRAINABLE, lambda config: None)
    return TuneController(search_alg=BasicVariantGenerator(), storage=storage(tmp_path / "new"))
