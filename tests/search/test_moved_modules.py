"""A search started before search/ was grouped by concern pickled its classes under their old module paths; its
--resume reads them back (search.experiment.resume.find_moved_modules)."""

from __future__ import annotations

import importlib
import pickle
import sys

import pytest

from search.experiment.resume import MOVED_MODULES, find_moved_modules
from search.plugins.scheduler import SettledASHA


@pytest.fixture
def old_names():
    yield
    for old in MOVED_MODULES:
        sys.modules.pop(old, None)


def test_every_moved_module_exists_under_its_new_name():
    assert all(importlib.import_module(new) for new in MOVED_MODULES.values())


def test_a_scheduler_pickled_under_the_old_path_loads(old_names):
    old = pickle.dumps(SettledASHA(time_attr="epoch", max_t=4), protocol=0)
    old = old.replace(b"search.plugins.scheduler", b"search.scheduler")  # as tuner.pkl held it before
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(old)
    find_moved_modules()
    assert type(pickle.loads(old)) is SettledASHA
