"""The guard of the runtime patches: an upgraded Ray stops the driver at start, with one line naming the patch."""

from __future__ import annotations

import importlib.metadata
from contextlib import ExitStack

import pytest

from search import patches
from search.patches import _patch
from search.run import main

REAL_VERSION = importlib.metadata.version


@pytest.fixture
def stock_library():
    """No patch installed for the test, and afterwards as before it."""
    with ExitStack() as stack:
        for patch in patches.PATCHES:
            stack.enter_context(patch.applied(installed=False))
        yield


def test_every_patch_fits_the_installed_ray():
    assert {p.name: p.problem() for p in patches.PATCHES} == {p.name: None for p in patches.PATCHES}


def _in_place() -> dict[str, object]:
    """What each patch's target holds now."""
    return {p.name: vars(_patch._owner(p.target)[0])[_patch._owner(p.target)[1]] for p in patches.PATCHES}


def test_apply_installs_every_patch_once_and_remove_puts_ray_back(stock_library):
    stock = _in_place()
    patches.apply()
    replaced = _in_place()
    patches.apply()  # again (a second search in the process): nothing wrapped twice
    assert all(p.installed for p in patches.PATCHES) and _in_place() == replaced
    assert all(replaced[name] is not stock[name] for name in stock)
    for patch in patches.PATCHES:
        patch.remove()
    assert _in_place() == stock
    assert all(p.problem() is None for p in patches.PATCHES)  # installed or not, the guard reads Ray's source


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
