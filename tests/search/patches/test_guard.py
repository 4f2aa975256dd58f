"""The guard of the runtime patches: an upgraded Ray stops the driver at start, with one line naming the patch."""

from __future__ import annotations

import importlib.metadata

import pytest

from search import patches
from search.patches import _patch
from search.run import main

REAL_VERSION = importlib.metadata.version


@pytest.fixture
def stock_library():
    """No patch installed for the test, and afterwards as before it."""
    installed = [p for p in patches.PATCHES if p.installed]
    for patch in installed:
        patch.remove()
    yield
    for patch in installed:
        patch.install()


def test_every_patch_fits_the_installed_ray():
    assert {p.name: p.problem() for p in patches.PATCHES} == {p.name: None for p in patches.PATCHES}


def test_apply_installs_every_patch_once(stock_library):
    patches.apply()
    replaced = {p.name: _patch._owner(p.target)[0].__dict__[_patch._owner(p.target)[1]] for p in patches.PATCHES}
    patches.apply()  # again (a second search in the process): nothing wrapped twice
    try:
        assert all(p.installed for p in patches.PATCHES)
        assert {p.name: _patch._owner(p.target)[0].__dict__[_patch._owner(p.target)[1]] for p in patches.PATCHES} \
            == replaced  # fmt: skip
    finally:
        for patch in patches.PATCHES:
            patch.remove()


def test_a_changed_source_names_the_function_and_the_patch():
    patch = patches.PATCHES[0]
    path = next(iter(patch.fingerprints))
    with pytest.raises(patches.PatchError) as error:
        patch.check(sources={path: "0" * 16})
    message = str(error.value)
    assert f"{path} changed in ray" in message and f"search/patches/{patch.name}.py" in message
    assert "\n" not in message


def _newer_ray(name: str) -> str:
    return "2.61.0" if name == "ray" else REAL_VERSION(name)


def test_a_newer_ray_stops_the_driver_with_one_line_and_nothing_written(stock_library, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(importlib.metadata, "version", _newer_ray)
    assert main(["--smoke-test", "--name", "upgraded"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: runtime patch 'experiment_state' no longer fits: ray is 2.61.0, not the 2.60.x")
    assert "\n" not in err
    assert list(tmp_path.iterdir()) == [] and not any(p.installed for p in patches.PATCHES)
