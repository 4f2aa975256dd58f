"""Test tiers by what a test starts: a marker per kind of thing started, none for a test that starts nothing.

    pytest --tier fast            # the tests that start nothing: no Ray, no process, no server (make test-fast)
    pytest --tier ray --tier processes
    pytest                        # every tier, one at a time (make test WORKERS=1)
    pytest -n 2 --dist loadgroup  # every tier, two at a time, in the groups of ``group_of`` (make test on 2 cores)

A test's time limit is its most expensive tier's, times the tests run at once. A test in the fast tier that starts a
process (Ray, a search, a server, a browser) fails and names the marker to add: the tier stays what its name
promises. At the end of a run the time spent in each tier is printed, so a tier that grows shows in CI's log.
"""

from __future__ import annotations

import os
import sys
import threading
from collections import defaultdict

import pytest

FAST = "fast"
# marker -> (what a test with it starts, its time limit in seconds); a test with several markers gets the longest.
TIERS = {
    "training": ("nothing but a whole training run in this process (seconds to a minute)", 180),
    "ray": ("an in-process local Ray", 300),
    "processes": ("subprocesses: searches, command-line tools, MLflow or dashboard servers", 600),
    "browser": ("headless Chromium", 300),
    "postgres": ("a PostgreSQL server", 300),
    "cluster": ("a Ray cluster in network namespaces, or `ray up` over SSH", 900),
}
FAST_TIMEOUT_S = 60
CLUSTER_TESTS = "tests/cluster/"
# Shared fixtures that start something: a test that asks for one is in its tier without saying so.
FIXTURE_TIERS = {"ray_local": "ray", "smoke_search": "processes", "cluster": "cluster"}
# Python's audit events that start a process.
_STARTS_A_PROCESS = {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system", "os.exec", "os.spawn"}
_running_fast_test = False
_started: list[str] = []  # what the fast test running now started (kept: code may swallow the error raised)


def limit_s(tier: str) -> int:
    """The tier's time limit per test, in seconds."""
    return TIERS[tier][1] if tier in TIERS else FAST_TIMEOUT_S


def tier_of(item: pytest.Item) -> str:
    """The one tier a test counts in: its most expensive (the longest time limit)."""
    return max(tiers_of(item), key=limit_s)


def tiers_of(item: pytest.Item) -> list[str]:
    """The tiers of what ``item`` starts: its markers' and its fixtures'; ``[FAST]`` when it starts nothing."""
    by_fixture = {FIXTURE_TIERS[name] for name in getattr(item, "fixturenames", ()) if name in FIXTURE_TIERS}
    return [name for name in TIERS if item.get_closest_marker(name) or name in by_fixture] or [FAST]


def group_of(nodeid: str) -> str:
    """The group of the test ``nodeid`` under xdist: its file's tests run on one worker, so a module's
    fixtures are made once; the cluster's tests run one after another, since its hosts have fixed addresses. (xdist's
    own ``xdist_group`` marker renames node ids, which pytest 9.2 no longer reads: the groups are its scheduler's.)"""
    path = nodeid.split("::", 1)[0]
    return CLUSTER_TESTS if path.startswith(CLUSTER_TESTS) else path


class _GroupScheduling:
    """Builds xdist's scheduler: its by-scope scheduling with ``group_of`` as the scope, whatever ``--dist`` asks
    (but ``each``, which runs every test on every worker): the cluster's tests never overlap."""

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log):
        if config.getvalue("dist") == "each":
            return None
        from xdist.scheduler import LoadScopeScheduling

        class ByGroup(LoadScopeScheduling):
            def _split_scope(self, nodeid: str) -> str:
                return group_of(nodeid)

        return ByGroup(config, log)


def tests_at_once() -> int:
    """How many tests run at once: pytest-xdist's workers, else 1."""
    return int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))


def _refuse_processes(event: str, args: tuple) -> None:
    # The main thread only: a library's thread (an MLflow writer's store process) may outlive the test that began it.
    if _running_fast_test and event in _STARTS_A_PROCESS and threading.current_thread() is threading.main_thread():
        _started.append(f"{event}: {args[0] if args else ''!r}")
        raise RuntimeError(_refusal())


def _refusal() -> str:
    return (
        f"a test of the fast tier started a process ({_started[0]}): mark it with the tier of what it starts, one of "
        f"{', '.join(TIERS)} (tests/tiers.py)"
    )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        action="append",
        choices=[FAST, *TIERS],
        help="run only the tests of this tier (repeatable; default: every tier)",
    )


def pytest_configure(config: pytest.Config) -> None:
    for name, (starts, timeout_s) in TIERS.items():
        config.addinivalue_line("markers", f"{name}: the test starts {starts} (time limit {timeout_s} s)")
    sys.addaudithook(_refuse_processes)  # a hook cannot be removed: it acts only while a fast test runs
    config.pluginmanager.register(_TierClock(), "tier-clock")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_GroupScheduling(), "tier-groups")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    chosen = set(config.getoption("tier") or ())
    keep, drop = [], []
    for item in items:
        tiers = tiers_of(item)
        if not item.get_closest_marker("timeout"):  # n tests at a time: each has 1/n of the machine
            item.add_marker(pytest.mark.timeout(limit_s(tier_of(item)) * tests_at_once()))
        item.user_properties.append(("tier", tier_of(item)))  # for the clock, which under xdist collects nothing
        (keep if not chosen or chosen & set(tiers) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    global _running_fast_test
    _running_fast_test = tiers_of(item) == [FAST]
    _started.clear()
    try:
        return (yield)
    finally:
        _running_fast_test = False


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    result = yield
    if _started:  # the error was raised, and caught by the code under test
        pytest.fail(_refusal(), pytrace=False)
    return result


class _TierClock:
    """The time of each tier's tests (setup, call and teardown), printed after the run: the sum of the tests' own
    times, so with two at a time it exceeds the run's wall."""

    def __init__(self) -> None:
        self.times: dict[str, list] = defaultdict(lambda: [0.0, 0])

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        times = self.times[dict(report.user_properties).get("tier", FAST)]
        times[0] += report.duration
        times[1] += report.when == "call"

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.times:
            return
        terminalreporter.section("time per tier (a test counts in its most expensive tier)")
        for tier in sorted([FAST, *TIERS], key=limit_s):
            if tier in self.times:
                seconds, count = self.times[tier]
                terminalreporter.write_line(f"{tier:<10} {count:>4} tests {seconds:>8.1f} s")
