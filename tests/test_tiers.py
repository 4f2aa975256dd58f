"""The test tiers (tests/tiers.py) on a small suite of their own, run by pytest in a subprocess."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.processes

SUITE = """
import subprocess
import pytest

def test_starts_nothing():
    assert sum(range(4)) == 6

def test_starts_a_process_unmarked():
    subprocess.run(["true"], check=True)

def test_starts_a_process_and_swallows_the_error():
    try:
        subprocess.run(["true"], check=True)
    except Exception:
        pass

@pytest.mark.processes
def test_starts_a_process_marked():
    subprocess.run(["true"], check=True)

@pytest.mark.ray
def test_in_the_ray_tier():
    pass
"""
CONFTEST = 'pytest_plugins = ["tests.tiers"]\n'  # as tests/conftest.py loads them


@pytest.fixture
def suite(pytester: pytest.Pytester, request: pytest.FixtureRequest, monkeypatch) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    monkeypatch.setenv("PYTHONPATH", str(request.config.rootpath))  # the project's tests package, for the conftest
    return pytester


def test_a_fast_test_that_starts_a_process_fails_and_names_the_markers(suite):
    result = suite.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*test_starts_a_process_unmarked*", "*a test of the fast tier started a process*"])
    assert "FAILED test_suite.py::test_starts_a_process_and_swallows_the_error" in result.stdout.str()
    assert "processes, browser" in result.stdout.str()  # the markers it may add


def test_a_tier_runs_alone_and_each_tier_prints_its_time(suite):
    fast = suite.runpytest_subprocess("-p", "no:cacheprovider", "--tier", "fast", "-k", "not process")
    fast.assert_outcomes(passed=1, deselected=4)
    fast.stdout.fnmatch_lines(["*time per tier*", "fast * 1 tests *"])
    both = suite.runpytest_subprocess("-p", "no:cacheprovider", "--tier", "ray", "--tier", "processes")
    both.assert_outcomes(passed=2, deselected=3)
    both.stdout.fnmatch_lines(["ray * 1 tests *", "processes * 1 tests *"])


# Each test appends the worker that ran it, and a module fixture the worker that made it, to $RAN.
GROUPED = """
import os
import pytest

def _note(what):
    with open(os.environ["RAN"], "a") as f:
        f.write(f"{what} {os.environ['PYTEST_XDIST_WORKER']}\\n")

@pytest.fixture(scope="module")
def made():
    _note("fixture")

@pytest.mark.parametrize("n", range(4))
def test_reads_the_module_fixture(made, n):
    _note("test")
"""


def test_two_at_a_time_a_files_tests_and_the_clusters_run_on_one_worker(suite, tmp_path, monkeypatch):
    suite.makepyfile(**{"test_other": "import pytest\n\n@pytest.mark.parametrize('n', range(8))\ndef test_n(n): pass"})
    for folder in ("grouped", "tests/cluster/a", "tests/cluster/b"):  # files of distinct names: no __init__.py here
        (suite.path / folder).mkdir(parents=True)
        (suite.path / folder / f"test_{folder[-1]}.py").write_text(GROUPED)
    ran = {}
    for folder, tests in (("grouped", 12), ("tests/cluster", 16)):  # with test_other.py's 8
        ran[folder] = tmp_path / f"{folder.replace('/', '_')}.txt"
        monkeypatch.setenv("RAN", str(ran[folder]))
        result = suite.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", folder, "test_other.py")
        result.assert_outcomes(passed=tests)
        result.stdout.fnmatch_lines([f"fast * {tests} tests *"])  # the tier clock, from the workers' reports
    grouped = ran["grouped"].read_text().splitlines()
    assert len(grouped) == 5 and len(set(grouped[1:])) == 1  # the fixture made once, its 4 tests on one worker
    cluster = ran["tests/cluster"].read_text().splitlines()
    assert len(cluster) == 10 and len({line.split()[1] for line in cluster}) == 1  # both files' tests on one worker
